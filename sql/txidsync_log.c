/*
 * txidsync_log: the row trigger of the change-log tracking mode, in C
 * (docs/design.md, "Tracking modes").  A server-side module, loaded by
 * PostgreSQL, not part of the daemon.
 *
 * For every row an INSERT, UPDATE or DELETE writes, it appends one entry
 * (txid, version, key columns...) to the table's change log: txid is the
 * writer's top-level transaction id plus the txid offset, version the next
 * value of the table's version sequence, the key the row's primary key
 * (an update that changes the key appends the old key too).  The entry is
 * written straight into the log's heap and indexes, without the executor:
 * that is most of what the C trigger saves over the plpgsql one, which
 * does the same with an INSERT statement (sql/txidsync.sql generates it
 * where this module cannot be installed).
 *
 * It runs AFTER the row: by then the writer holds the row's lock, or has
 * passed the primary key's unique check (which waits for a concurrent
 * writer of the same key to end), so the version it takes from the
 * sequence is greater than that of every earlier committed write of the
 * key.  Versions therefore increase per key in commit order.
 *
 * Trigger arguments, set by txidsync._track(): the log table and the
 * version sequence (names in schema txidsync) and the txid offset.  Names,
 * not OIDs, so that a dump and restore keeps the triggers working.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(txidsync_log_row);

/* The relation name in schema txidsync, or an error naming what is missing. */
static Oid txidsync_relid(const char *name, const char *what)
{
    Oid ns = get_namespace_oid("txidsync", false);
    Oid rel = get_relname_relid(name, ns);
    if (!OidIsValid(rel))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("txidsync: the %s txidsync.%s is missing", what, name),
                        errhint("Run txidsync.track() on the table again.")));
    return rel;
}

/* Inserts tup into every index of log that is ready for inserts.  The
 * indexes txidsync creates are plain columns; anything else is refused
 * rather than written wrongly. */
static void insert_index_entries(Relation log, HeapTuple tup, Datum *values, bool *nulls)
{
    List *indexes = RelationGetIndexList(log);
    ListCell *lc;
    foreach (lc, indexes) {
        Relation idx = index_open(lfirst_oid(lc), RowExclusiveLock);
        IndexInfo *ii;
        Datum ivalues[INDEX_MAX_KEYS];
        bool inulls[INDEX_MAX_KEYS];
        int i;
        if (!idx->rd_index->indisready) {
            index_close(idx, RowExclusiveLock);
            continue;
        }
        ii = BuildIndexInfo(idx);
        if (ii->ii_Expressions != NIL || ii->ii_Predicate != NIL || ii->ii_Unique)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("txidsync: index %s on the change log %s is not a plain "
                                   "non-unique index of its columns",
                                   RelationGetRelationName(idx), RelationGetRelationName(log))));
        for (i = 0; i < ii->ii_NumIndexAttrs; i++) {
            AttrNumber a = ii->ii_IndexAttrNumbers[i];
            ivalues[i] = values[a - 1];
            inulls[i] = nulls[a - 1];
        }
        index_insert(idx, ivalues, inulls, &tup->t_self, log, UNIQUE_CHECK_NO, false, ii);
        index_close(idx, RowExclusiveLock);
    }
    list_free(indexes);
}

/* Appends the entry (txid, next version, key of row) to log.  pk is the
 * primary key index of rel, whose key columns the log's columns 3... hold
 * in index order. */
static void append_entry(Relation rel, Relation pk, HeapTuple row, Relation log, Oid seq,
                         int64 txid)
{
    TupleDesc desc = RelationGetDescr(log);
    int n_keys = pk->rd_index->indnkeyatts;
    Datum *values;
    bool *nulls;
    HeapTuple tup;
    int i;
    if (desc->natts != n_keys + 2)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("txidsync: the change log %s has %d columns, not %d (txid, "
                               "version and the %d primary key columns of %s)",
                               RelationGetRelationName(log), desc->natts, n_keys + 2, n_keys,
                               RelationGetRelationName(rel)),
                        errhint("Run txidsync.track() on the table again.")));
    values = palloc(sizeof(Datum) * desc->natts);
    nulls = palloc0(sizeof(bool) * desc->natts);
    values[0] = Int64GetDatum(txid);
    values[1] = Int64GetDatum(nextval_internal(seq, false));
    for (i = 0; i < n_keys; i++)
        values[2 + i] =
            heap_getattr(row, pk->rd_index->indkey.values[i], RelationGetDescr(rel), &nulls[2 + i]);
    tup = heap_form_tuple(desc, values, nulls);
    simple_heap_insert(log, tup);
    insert_index_entries(log, tup, values, nulls);
    heap_freetuple(tup);
    pfree(values);
    pfree(nulls);
}

/* Whether the update of old to new left the primary key's columns as they
 * were (bytewise: a change to an equal but different value, such as 1.0
 * to 1.00, counts as a change and logs the key twice, which is harmless). */
static bool same_key(Relation rel, Relation pk, HeapTuple old, HeapTuple new)
{
    TupleDesc desc = RelationGetDescr(rel);
    int i;
    for (i = 0; i < pk->rd_index->indnkeyatts; i++) {
        AttrNumber a = pk->rd_index->indkey.values[i];
        Form_pg_attribute att = TupleDescAttr(desc, a - 1);
        bool n1, n2;
        Datum d1 = heap_getattr(old, a, desc, &n1);
        Datum d2 = heap_getattr(new, a, desc, &n2);
        if (n1 != n2 || (!n1 && !datumIsEqual(d1, d2, att->attbyval, att->attlen)))
            return false;
    }
    return true;
}

Datum txidsync_log_row(PG_FUNCTION_ARGS)
{
    TriggerData *td = (TriggerData *)fcinfo->context;
    Relation rel, pk, log;
    Oid pk_oid, seq;
    int64 txid;
    char *end;
    if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
        !TRIGGER_FIRED_FOR_ROW(td->tg_event) || td->tg_trigger->tgnargs != 3)
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("txidsync_log_row: must run as an AFTER ROW trigger with three "
                               "arguments (txidsync.track() creates it)")));
    rel = td->tg_relation;
    pk_oid = RelationGetPrimaryKeyIndex(rel);
    if (!OidIsValid(pk_oid))
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("txidsync: table %s has no primary key", RelationGetRelationName(rel))));
    errno = 0;
    txid = strtoll(td->tg_trigger->tgargs[2], &end, 10);
    if (errno != 0 || *end != '\0')
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("txidsync: bad txid offset \"%s\" in the trigger",
                               td->tg_trigger->tgargs[2])));
    txid += (int64)U64FromFullTransactionId(GetTopFullTransactionId());
    seq = txidsync_relid(td->tg_trigger->tgargs[1], "version sequence");
    log = table_open(txidsync_relid(td->tg_trigger->tgargs[0], "change log"), RowExclusiveLock);
    pk = index_open(pk_oid, AccessShareLock);
    if (TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event)) {
        append_entry(rel, pk, td->tg_trigtuple, log, seq, txid);
    } else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
        if (!same_key(rel, pk, td->tg_trigtuple, td->tg_newtuple))
            append_entry(rel, pk, td->tg_trigtuple, log, seq, txid);
        append_entry(rel, pk, td->tg_newtuple, log, seq, txid);
    }
    index_close(pk, AccessShareLock);
    table_close(log, RowExclusiveLock);
    return PointerGetDatum(NULL);
}
