"""(d) Time `flor.dataframe("loss", "acc")` in a fresh process.

Import time is reported separately and excluded: the target is the query.
pandas is imported before the clock starts on both sides: flordb 4.0.1 imports it
with `import flordb`, ours on first use, and a user reading a table has it loaded.
`rows` and `cols` let the harness check both implementations answered the same.
"""

import time

t0 = time.perf_counter()
import pandas  # noqa: E402,F401
import flordb as flor  # noqa: E402

t1 = time.perf_counter()
df = flor.dataframe("loss", "acc")
t2 = time.perf_counter()

from _report import report  # noqa: E402

report(
    import_s=t1 - t0,
    dataframe_s=t2 - t1,
    rows=int(len(df)),
    cols=[str(c) for c in df.columns],
    loss_dtype=str(df["loss"].dtype) if "loss" in df.columns else None,
    loss_nonnull=int(df["loss"].notna().sum()) if "loss" in df.columns else None,
    acc_nonnull=int(df["acc"].notna().sum()) if "acc" in df.columns else None,
)
