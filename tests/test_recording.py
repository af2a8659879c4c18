"""Recording: what a training script logs comes back, typed, with its loop context."""

from __future__ import annotations

import math

from conftest import Project


def test_dataframe_pivots_every_run_with_loop_columns(trained: Project):
    rows = trained.frame("lr", "loss", "val_acc")
    assert len(rows) == 2 * 4 + 3 * 4
    assert list(rows[0]) == ["projid", "tstamp", "filename", "run_id", "source", "epoch", "step", "lr", "loss", "val_acc"]
    first = [r for r in rows if r["lr"] == 0.01]
    assert [(r["epoch"], r["step"]) for r in first] == [(e, s) for e in range(2) for s in range(4)]
    assert all(r["val_acc"] == r["epoch"] / 10 for r in rows)
    assert all(math.isclose(r["loss"], r["epoch"] + r["step"] / 10) for r in rows)
    assert {r["source"] for r in rows} == {"forward"}
    assert {r["filename"] for r in rows} == {"train.py"}


def test_numbers_come_back_as_numbers(trained: Project):
    dtypes = trained.py(
        """
        import json, flordb as flor
        df = flor.dataframe("lr", "epochs", "loss")
        print(json.dumps({c: str(t) for c, t in df.dtypes.items()}))
        """
    )
    assert dtypes["lr"] == "float64"
    assert dtypes["epochs"] == "Int64"
    assert dtypes["epoch"] == "Int64"
    assert dtypes["loss"] == "float64"
    assert dtypes["tstamp"].startswith("datetime64")


def test_run_table_without_names(trained: Project):
    rows = trained.frame()
    assert len(rows) == 2
    assert sorted(r["lr"] for r in rows) == [0.01, 0.1]
    assert sorted(r["epochs"] for r in rows) == [2, 3]
    assert all(r["accuracy"] == 0.9 for r in rows)
    assert len({r["run_id"] for r in rows}) == 2


def test_values_keep_their_json_types(project: Project):
    project.write(
        "values.py",
        """
        import numpy as np
        import flordb as flor
        assert flor.log("f", 0.5) == 0.5
        flor.log("i", 7)
        flor.log("b", True)
        flor.log("s", "text")
        flor.log("none", None)
        flor.log("lst", [1, 2.5, "x"])
        flor.log("dct", {"a": [1, 2]})
        flor.log("npf", np.float32(0.25))
        flor.log("npi", np.int64(3))
        flor.log("arr0", np.array(1.5))
        flor.log("nan", float("nan"))
        flor.log("obj", object)
        """,
    )
    project.run("values.py")
    got = project.py(
        """
        import json, math, flordb as flor
        out = {}
        for name in ["f", "i", "b", "s", "none", "lst", "dct", "npf", "npi", "arr0", "nan", "obj"]:
            v = flor.dataframe(name)[name].iloc[0]
            if hasattr(v, "item"):
                v = v.item()
            out[name] = [repr(v) if isinstance(v, float) and math.isnan(v) else v, type(v).__name__]
        print(json.dumps(out, default=str))
        """
    )
    assert got["f"] == [0.5, "float"]
    assert got["i"] == [7, "int"]
    assert got["b"] == [True, "bool"]
    assert got["s"] == ["text", "str"]
    assert got["lst"] == [[1, 2.5, "x"], "list"]
    assert got["dct"] == [{"a": [1, 2]}, "dict"]
    assert got["npf"] == [0.25, "float"]
    assert got["npi"] == [3, "int"]
    assert got["arr0"] == [1.5, "float"]
    assert got["nan"][0] == "nan"
    assert got["obj"] == ["<class 'object'>", "str"]


def test_loop_yields_items_unchanged_and_records_item_text(project: Project):
    project.write(
        "items.py",
        """
        import flordb as flor
        seen = []
        for name in flor.loop("doc", ["a.pdf", "b.pdf"]):
            seen.append(name)
            flor.log("length", len(name))
        assert seen == ["a.pdf", "b.pdf"]
        """,
    )
    project.run("items.py")
    rows = project.frame("length")
    assert [(r["doc"], r["doc_value"]) for r in rows] == [(0, "a.pdf"), (1, "b.pdf")]


def test_break_and_exceptions_leave_no_stale_context(project: Project):
    project.write(
        "brk.py",
        """
        import flordb as flor
        for e in flor.loop("epoch", range(10)):
            if e == 2:
                break
        flor.log("after_break", 1)
        try:
            for e in flor.loop("epoch2", range(10)):
                raise ValueError("boom")
        except ValueError:
            pass
        flor.log("after_error", 2)
        """,
    )
    project.run("brk.py")
    assert project.frame("after_break") [0].get("epoch") is None
    assert "epoch2" not in project.frame("after_error")[0]
    n = project.frame("time::iter::n")
    assert sorted(r["time::iter::n"] for r in n) == [1, 3]


def test_nested_loops_close_on_break_on_a_failing_iterable_and_refuse_bad_input(project: Project):
    project.write(
        "inner.py",
        """
        import flordb as flor

        def items():
            yield 1
            raise KeyError("bad item")

        for e in flor.loop("epoch", range(2)):
            for s in flor.loop("step", range(5)):
                if s == 1:
                    break
            flor.log("after_break", e)
            try:
                for s in flor.loop("batch", items()):
                    pass
            except KeyError:
                pass
            flor.log("after_failure", e)
        try:
            flor.loop("x", 5)
        except TypeError:
            flor.log("refused", 1)
        flor.log("end", 1)
        """,
    )
    project.run("inner.py")
    assert [(r["epoch"], "step" in r) for r in project.frame("after_break")] == [(0, False), (1, False)]
    assert [(r["epoch"], "batch" in r) for r in project.frame("after_failure")] == [(0, False), (1, False)]
    assert project.frame("refused")[0]["refused"] == 1
    end = project.frame("end")[0]
    assert "epoch" not in end and "x" not in end


def test_log_and_loop_take_every_form_of_call(project: Project):
    # The per-step calls are entered directly from CPython; the uncommon forms must
    # behave as an ordinary function's would.
    project.write(
        "calls.py",
        """
        import numpy as np
        import flordb as flor

        v, big, npv = 2.5, 2**70, np.float64(0.125)
        assert flor.log("same", v) is v and flor.log("npv", npv) is npv
        assert flor.log("big", big) is big
        assert flor.log(name="kw", value=3) == 3 and flor.log("half", value=4) == 4
        refused = 0
        for bad in [lambda: flor.log(5, 1.0), lambda: flor.log("x"), lambda: flor.log("x", 1, 2),
                    lambda: flor.log("x", 1, nope=2)]:
            try:
                bad()
            except TypeError:
                refused += 1
        flor.log("refused", refused)
        steps = flor.loop("l", [10, 20, 30])
        assert iter(steps) is steps and next(steps) == 10
        try:
            type(steps)()
        except TypeError:
            flor.log("not_constructible", 1)
        flor.log("inside", 1)
        steps.close(); steps.close()
        assert list(steps) == []
        flor.log("after_close", 1)
        """,
    )
    project.run("calls.py")
    assert project.frame("same")[0]["same"] == 2.5 and project.frame("npv")[0]["npv"] == 0.125
    assert float(project.frame("big")[0]["big"]) == float(2**70)
    assert project.frame("kw")[0]["kw"] == 3 and project.frame("half")[0]["half"] == 4
    assert project.frame("refused")[0]["refused"] == 4
    assert project.frame("inside")[0]["l"] == 0
    assert project.frame("not_constructible")[0]["not_constructible"] == 1
    assert "l" not in project.frame("after_close")[0]


def test_same_loop_name_may_nest(project: Project):
    project.write(
        "nest.py",
        """
        import flordb as flor
        for i in flor.loop("x", range(2)):
            for j in flor.loop("x", range(3)):
                flor.log("v", i * 10 + j)
        """,
    )
    project.run("nest.py")
    rows = project.frame("v")
    assert [(r["x"], r["x_2"], r["v"]) for r in rows] == [(i, j, i * 10 + j) for i in range(2) for j in range(3)]


def test_iteration_blocks(project: Project):
    project.write(
        "it.py",
        """
        import flordb as flor
        for i, doc in enumerate(["p.pdf", "q.pdf"]):
            with flor.iteration("document", i, doc):
                flor.log("pages", i + 1)
        with flor.iteration("request", None, "GET /"):
            flor.log("status", 200)
        """,
    )
    project.run("it.py")
    rows = project.frame("pages")
    assert [(r["document"], r["document_value"], r["pages"]) for r in rows] == [(0, "p.pdf", 1), (1, "q.pdf", 2)]
    rows = project.frame("status")
    assert rows[0]["request_value"] == "GET /" and "request" not in rows[0]


def test_timing_records_feed_cost_estimates(trained: Project):
    names = {r["value_name"] for r in trained.py(
        """
        import json, flordb as flor
        print(json.dumps(flor.query("select distinct value_name from logs where value_type = 3").to_dict(orient="records")))
        """
    )}
    assert {"time::setup", "time::iter", "time::iter::std", "time::iter::n", "time::loop", "time::script", "time::teardown"} <= names
    epochs = [r for r in trained.frame("time::iter::n") if r.get("epoch") is None]
    assert sorted(r["time::iter::n"] for r in epochs) == [2, 3]


def test_explicit_commit_starts_a_new_run(project: Project):
    project.write(
        "two.py",
        """
        import flordb as flor
        flor.log("x", 1)
        info = flor.commit()
        assert info["records"] >= 1, info
        flor.log("x", 2)
        """,
    )
    project.run("two.py")
    rows = project.frame("x")
    assert sorted(r["x"] for r in rows) == [1, 2]
    assert len({r["run_id"] for r in rows}) == 2


def test_reading_records_no_run(trained: Project):
    before = len(trained.runs())
    trained.py("import json, flordb as flor; flor.dataframe('loss'); flor.runs(); print(json.dumps(1))")
    assert len(trained.runs()) == before


def test_script_in_subfolder_is_recorded_with_its_path(project: Project):
    project.write("src/train.py", "import flordb as flor\nflor.log('x', 1)\n")
    project.commit_all()
    project.run("src/train.py")
    (run,) = project.runs()
    assert run["script"] == "src/train.py"
    assert run["filename"] == "train.py"


def test_loops_over_array_batches_keep_no_item_text(project: Project):
    project.write(
        "arrays.py",
        """
        import numpy as np
        import flordb as flor
        batches = [(np.ones((64, 64)), np.zeros(64)) for _ in range(3)]
        for step, (x, y) in flor.loop("step", enumerate(batches)):
            flor.log("s", float(x.sum()))
        for xs in flor.loop("pair", [[1, 2], [3, 4]]):
            flor.log("p", xs[0])
        """,
    )
    project.run("arrays.py")
    rows = project.frame("s")
    assert [r["step"] for r in rows] == [0, 1, 2] and "step_value" not in rows[0]
    assert [r["pair_value"] for r in project.frame("p")] == ["[1, 2]", "[3, 4]"]
