package txidsync;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Runs one single-node OpenSearch in this JVM, for txidsync's test bed.
 *
 * <pre>
 *   java -cp 'target/classes:target/lib/*' txidsync.OpenSearchNode HOME_DIR HTTP_PORT TRANSPORT_PORT
 * </pre>
 *
 * Prints {@code opensearch-node: started http://127.0.0.1:PORT} on stdout once
 * HTTP answers, new indices default to 0 replicas and every existing primary
 * shard is active. Logs WARN and above to stderr, plus the node's few
 * lifecycle lines (src/main/resources/log4j2.properties). Closes the node on
 * SIGTERM (or SIGINT, unless the shell started it in the background with
 * SIGINT ignored), then exits 143. Exits 1 if the node cannot start (port
 * taken, data dir locked by another node...), 2 on bad usage. Nothing is
 * written outside HOME_DIR.
 *
 * The node is built directly, not through OpenSearch's Bootstrap, so there are
 * no bootstrap checks (it runs as root), no security manager and no JNA
 * mlockall. Plugins come from the classpath (see {@link BedNode}); there is no
 * modules/ or plugins/ directory to install.
 *
 * This class deliberately does not extend Node: a subclass's superclass is
 * initialised before its main() runs, and Node's static initialisers may
 * already touch log4j or netty, so the system properties set in main() could
 * come too late.
 */
public final class OpenSearchNode {

    static final String CLUSTER_NAME = "txidsync-bed";
    static final String NODE_NAME = "bed";
    static final String HOST = "127.0.0.1";

    private OpenSearchNode() {}

    public static void main(String[] args) {
        if (args.length != 3) {
            System.err.println("usage: txidsync.OpenSearchNode HOME_DIR HTTP_PORT TRANSPORT_PORT");
            System.exit(2);
        }
        final Path home = Paths.get(args[0]).toAbsolutePath().normalize();
        final int httpPort = parsePort(args[1]);
        final int transportPort = parsePort(args[2]);

        // What OpenSearch's stock jvm.options would pass with -D. They must be
        // set before the first log4j or netty class initialises, i.e. here.
        // A -D on the command line wins over these.
        defaultProperty("log4j2.disable.jmx", "true");
        // Our shutdown hook closes the node and logs while doing so; log4j's
        // own hook would stop logging first.
        defaultProperty("log4j.shutdownHookEnabled", "false");
        defaultProperty("log4j2.shutdownHookEnabled", "false");
        defaultProperty("io.netty.noUnsafe", "true");
        defaultProperty("io.netty.noKeySetOptimization", "true");
        defaultProperty("io.netty.recycler.maxCapacityPerThread", "0");
        defaultProperty("io.netty.allocator.numDirectArenas", "0");
        defaultProperty("java.awt.headless", "true");
        defaultProperty("jna.nosys", "true");
        // JNA (loaded by the node's process probes) unpacks its native
        // library into a temp dir, by default under ~/.cache: keep it in HOME_DIR.
        defaultProperty("jna.tmpdir", home.resolve("tmp").toString());

        final PrintStream out = System.out;
        final CountDownLatch stopped = new CountDownLatch(1);
        final NodeHolder holder = new NodeHolder();

        // Installed before the node starts, so a SIGTERM during start-up also
        // closes whatever has been opened (and releases the data dir lock).
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            holder.closing = true; // before waiting for start() to give up the lock
            try {
                holder.close();
            } finally {
                stopped.countDown();
            }
        }, "opensearch-node-shutdown"));

        try {
            holder.start(home, httpPort, transportPort, out);
        } catch (Throwable t) {
            System.err.println("opensearch-node: failed to start: " + t);
            Throwable c = t.getCause();
            while (c != null) {
                System.err.println("  caused by: " + c);
                c = c.getCause();
            }
            System.exit(1); // runs the hook, which closes what was opened
            return;
        }
        // The node's own threads are daemons: keep the JVM up until the hook.
        while (true) {
            try {
                stopped.await();
                return;
            } catch (InterruptedException e) {
                // keep waiting
            }
        }
    }

    private static int parsePort(String s) {
        try {
            int p = Integer.parseInt(s);
            if (p > 0 && p < 65536) {
                return p;
            }
        } catch (NumberFormatException e) {
            // fall through
        }
        System.err.println("opensearch-node: bad port: " + s);
        System.exit(2);
        return -1;
    }

    private static void defaultProperty(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    /**
     * Owns the node; every OpenSearch class is reached only through here, so
     * nothing of OpenSearch loads before main() has set the properties above.
     */
    static final class NodeHolder {
        private BedNode node;
        private boolean closed;
        /** Set by the shutdown hook without the lock: the start line is not printed. */
        volatile boolean closing;

        synchronized void start(Path home, int httpPort, int transportPort, PrintStream out) throws Exception {
            if (closed || closing) {
                return;
            }
            for (String dir : new String[] {"config", "data", "logs", "plugins", "modules", "tmp"}) {
                Files.createDirectories(home.resolve(dir));
            }
            node = BedNode.create(home, httpPort, transportPort);
            node.start();
            BedNode.afterStart(node);
            if (!closing) {
                out.println("opensearch-node: started http://" + HOST + ":" + httpPort);
                out.flush();
            }
        }

        synchronized void close() {
            closed = true;
            if (node == null) {
                return;
            }
            try {
                node.close();
                if (!node.awaitClose(30, TimeUnit.SECONDS)) {
                    System.err.println("opensearch-node: node did not close within 30s");
                }
            } catch (IOException | InterruptedException | RuntimeException e) {
                System.err.println("opensearch-node: error while closing: " + e);
            } finally {
                node = null;
            }
        }
    }

    /**
     * A {@link org.opensearch.node.Node} whose plugins are classes already on
     * the classpath: the Netty4 transport and HTTP server, and the two
     * standard modules most mappings expect (analysis-common: whitespace,
     * simple, lowercase...; mapper-extras: scaled_float, token_count...).
     */
    static final class BedNode extends org.opensearch.node.Node {

        private static final List<Class<? extends org.opensearch.plugins.Plugin>> PLUGINS = List.of(
                org.opensearch.transport.Netty4Plugin.class,
                org.opensearch.analysis.common.CommonAnalysisPlugin.class,
                org.opensearch.index.mapper.MapperExtrasPlugin.class);

        private BedNode(org.opensearch.env.Environment env,
                        Collection<Class<? extends org.opensearch.plugins.Plugin>> plugins) {
            super(env, plugins, true);
        }

        static BedNode create(Path home, int httpPort, int transportPort) {
            org.opensearch.common.settings.Settings settings = org.opensearch.common.settings.Settings.builder()
                    .put("cluster.name", CLUSTER_NAME)
                    .put("node.name", NODE_NAME)
                    .put("discovery.type", "single-node")
                    .put("network.host", HOST)
                    .put("http.port", httpPort)
                    .put("transport.port", transportPort)
                    .put("path.home", home.toString())
                    .put("path.data", home.resolve("data").toString())
                    .put("path.logs", home.resolve("logs").toString())
                    .put("cluster.routing.allocation.disk.threshold_enabled", false)
                    // A third of the default 100mb: the tests of requests too
                    // large for the node need rows of tens of MB, not hundreds,
                    // and txidsync's default --bulk-max-bytes (10 MiB) stays
                    // well under it.
                    .put("http.max_content_length", "32mb")
                    // The node runs the serial collector in a small heap, whose
                    // old generation fills with garbage up to a full collection:
                    // a parent breaker counting the heap's real use refused
                    // searches of an idle node (429, "Data too large").  It
                    // counts what the child breakers reserve instead.
                    .put("indices.breaker.total.use_real_memory", false)
                    .build();
            org.opensearch.env.Environment env = org.opensearch.node.InternalSettingsPreparer.prepareEnvironment(
                    settings, Collections.emptyMap(), home.resolve("config"), () -> NODE_NAME);
            return new BedNode(env, PLUGINS);
        }

        /**
         * Things that can only be done once the cluster is up.
         *
         * cluster.default_number_of_replicas is read from the cluster state's
         * settings, not from the node's, so it is set here as a persistent
         * cluster setting: every new index (explicit or auto-created by a
         * write) that does not ask otherwise gets 0 replicas, and a 1-node
         * cluster stays green. An index that asks for replicas still gets them.
         */
        static void afterStart(BedNode node) {
            org.opensearch.action.admin.cluster.settings.ClusterUpdateSettingsResponse r = node.client()
                    .admin()
                    .cluster()
                    .prepareUpdateSettings()
                    .setPersistentSettings(org.opensearch.common.settings.Settings.builder()
                            .put("cluster.default_number_of_replicas", 0)
                            .build())
                    .get(org.opensearch.common.unit.TimeValue.timeValueSeconds(30));
            if (!r.isAcknowledged()) {
                throw new IllegalStateException("setting cluster.default_number_of_replicas was not acknowledged");
            }

            // On a home that already holds indices, HTTP answers before their
            // shards are recovered (they are red for a moment): wait until
            // every primary is active, so "started" means writable.
            org.opensearch.action.admin.cluster.health.ClusterHealthResponse h = node.client()
                    .admin()
                    .cluster()
                    .prepareHealth()
                    .setWaitForYellowStatus()
                    .setTimeout(org.opensearch.common.unit.TimeValue.timeValueSeconds(60))
                    .get();
            if (h.isTimedOut()) {
                System.err.println("opensearch-node: warning: cluster still " + h.getStatus()
                        + " after 60s; some primary shards are not active");
            }
        }
    }
}
