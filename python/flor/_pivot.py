"""flordb 2.5-2.7's tables over today's store: ``log_records()`` and ``full_pivot()``.

``log_records()`` is the long table ``(projid, runid, tstamp, vid, epoch, step, name,
value)`` of every value logged with ``flor.log`` or ``flor.arg`` in every run of the
checkout: ``runid`` is the run's ``--flor NAME`` (its run id when unnamed), ``vid`` its
code version, ``epoch`` and ``step`` the 0-based positions in the outermost loop and
the loop inside it (missing outside them). Replayed values follow the forward ones.

``full_pivot(facts)`` classifies every name as spec section 7.7 says (DATA_PREP: one
value per run; OUTR_LOOP: one per epoch; INNR_LOOP: the rest), pivots each class on
its keys and outer-joins them. The 2023 code called a name DATA_PREP when *any* run
had one value; here it takes *every* run.

Both only read: they never record a run.
"""

from __future__ import annotations

from typing import Iterable

import os

from flordb import ProjectNotFoundError, _artifacts, _native

from ._constants import DATA_PREP, INNR_LOOP, OUTR_LOOP

_COLUMNS = list(INNR_LOOP) + ["name", "value"]

# ``kind = 1``: flor.log and flor.arg records (not captured output, timings or metadata).
_SQL = """
SELECT runs.projid AS projid, COALESCE(runs.name, runs.run_id) AS runid,
       runs.tstamp AS tstamp, runs.version AS vid,
       json_extract(ctxs.json, '$[0].iteration') AS epoch,
       json_extract(ctxs.json, '$[1].iteration') AS step,
       names.text AS name, records.value AS value, records.vtype AS vtype
FROM records
JOIN runs ON runs.run = records.run
JOIN names ON names.name = records.name
LEFT JOIN ctxs ON ctxs.ctx = records.ctx
WHERE records.kind = 1 AND names.text NOT LIKE 'flor::%'
ORDER BY runs.tstamp, runs.run_id, records.source, records.seq
"""

# The store's value types (crates/flor-core/src/record/value.rs).
_BOOL, _FLOAT = 1, 3


def _decode(value, vtype):
    if vtype == _BOOL and value is not None:
        return bool(value)
    if vtype == _FLOAT and value is None:
        return float("nan")
    return value


def log_records():
    """Every logged value of every run as flordb 2.5-2.7's long ``log_records`` table.

    Images logged with ``flor.log`` come back as absolute paths.
    """
    import pandas as pd

    try:
        _, rows = _native.query(os.getcwd(), _SQL, [], False)
    except ProjectNotFoundError:
        rows = []
    projid, runid, tstamp, vid, epoch, step, name, value, vtype = (list(c) for c in zip(*rows)) if rows else ([],) * 9
    root = _artifacts.project_root()
    values = [_artifacts.resolve(_decode(v, t), root) for v, t in zip(value, vtype)]
    out = pd.DataFrame(
        {
            "projid": pd.Series(projid, dtype="str"),
            "runid": pd.Series(runid, dtype="str"),
            "tstamp": pd.to_datetime(pd.Series(tstamp, dtype="str"), errors="coerce", format="ISO8601"),
            "vid": pd.Series(vid, dtype=object),
            "epoch": pd.Series(epoch, dtype="Int64"),
            "step": pd.Series(step, dtype="Int64"),
            "name": pd.Series(name, dtype="str"),
            "value": pd.Series(values, dtype=object),
        }
    )
    out = out.sort_values(["tstamp", "runid", "epoch", "step"], kind="stable", na_position="first")
    return out.reset_index(drop=True)


# Pivoting and joining on keys with missing values is fragile in pandas: missing keys
# (no code version, no epoch or step) become these stand-ins meanwhile.
_NO_VID = "\0no-vid"
_NO_POS = -1


def _classify(facts) -> tuple[list[str], list[str], list[str]]:
    order = list(dict.fromkeys(facts["name"].tolist()))

    def one_per(keys) -> set[str]:
        counts = facts.groupby(list(keys) + ["name"], sort=False, dropna=False).size()
        most = counts.groupby(level="name", sort=False).max()
        return set(most[most == 1].index)

    data_prep = one_per(DATA_PREP)
    outer = one_per(OUTR_LOOP) - data_prep
    return (
        [n for n in order if n in data_prep],
        [n for n in order if n in outer],
        [n for n in order if n not in data_prep and n not in outer],
    )


def _pivot(facts, keys, names):
    part = facts[facts["name"].isin(names)].drop_duplicates(subset=list(keys) + ["name"], keep="last")
    wide = part.set_index(list(keys) + ["name"])["value"].unstack("name")
    wide.columns.name = None
    return wide[[n for n in names if n in wide.columns]].reset_index()


def full_pivot(facts, names: Iterable[str] = ()):
    """One wide frame from ``log_records()``: the ``DATA_PREP`` keys ``projid, runid,
    tstamp, vid``, then ``epoch`` and ``step`` where some name is logged per epoch or
    per step, then one column per logged name: the DATA_PREP names, the OUTR_LOOP
    names, the INNR_LOOP names, each in the order they were first logged.

    ``names`` adds columns that no run logged (yet), empty, after the others: a
    where-clause such as ``"cf_matrix.isna()"`` then works on every run.
    """
    import numpy as np
    import pandas as pd

    facts = facts[_COLUMNS].copy()
    facts["vid"] = facts["vid"].astype(object).where(facts["vid"].notna(), _NO_VID)
    for k in ("epoch", "step"):
        facts[k] = facts[k].astype("Int64").fillna(_NO_POS).astype("int64")
    facts = facts.drop_duplicates(subset=list(INNR_LOOP) + ["name"], keep="last")

    data_prep, outer, inner = _classify(facts)
    parts = [
        (keys, _pivot(facts, keys, group))
        for keys, group in ((INNR_LOOP, inner), (OUTR_LOOP, outer), (DATA_PREP, data_prep))
        if group
    ]
    if parts:
        keys, wide = parts[0]
        for other_keys, other in parts[1:]:
            wide = wide.merge(other, how="outer", on=list(other_keys))
    else:
        keys, wide = DATA_PREP, pd.DataFrame(columns=list(DATA_PREP))
    logged = data_prep + outer + inner
    wide = wide[list(keys) + logged]
    for n in names:
        if n not in wide.columns:
            wide[n] = np.nan
    for n in logged:
        wide[n] = wide[n].infer_objects()
    wide["vid"] = wide["vid"].where(wide["vid"] != _NO_VID, None)
    for k in ("epoch", "step"):
        if k in wide.columns:
            wide[k] = wide[k].astype("Int64").mask(wide[k] == _NO_POS)
    sort = [k for k in ("tstamp", "runid", "epoch", "step") if k in wide.columns]
    return wide.sort_values(sort, kind="stable", na_position="first").reset_index(drop=True)
