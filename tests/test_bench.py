"""`scratchlm bench` over fake benchmark scripts: flags passed where declared, table, JSON, plot, failures."""

from __future__ import annotations

import json
import textwrap

import pytest

from scratchlm.cli import main
from scratchlm.commands import bench
from scratchlm.errors import ScratchlmError

# A benchmark following benchmarks/common.py's protocol, without JAX so the test stays fast.
FAST = textwrap.dedent('''
    import argparse, json, sys

    def main(argv=None):
        p = argparse.ArgumentParser()
        p.add_argument("--quick", action="store_true")
        p.add_argument("--no-peers", action="store_true")
        a = p.parse_args(argv)
        peer = None if a.no_peers else 100.0
        figures = [
            {"figure": "words/s", "unit": "words/s", "scratchlm": 200.0, "peer": peer, "peer_name": "gensim 4",
             "ratio": None if peer is None else 200.0 / peer, "higher_is_better": True},
            {"figure": "step time", "unit": "s", "scratchlm": 0.5, "peer": None if peer is None else 0.25,
             "peer_name": "torch", "ratio": None if peer is None else 2.0, "higher_is_better": False},
        ]
        out = {"benchmark": "fast", "device": "cpu: fake", "jax": "0.0", "date": "2026-01-01",
               "figures": figures, "argv": sys.argv[1:]}
        print("warming up...")
        print(json.dumps(out))
        return out

    if __name__ == "__main__":
        main()
''')
# Declares neither flag: passing --quick would make argparse exit 2.
PLAIN = textwrap.dedent('''
    import argparse, json
    argparse.ArgumentParser().parse_args()
    print(json.dumps({"benchmark": "plain", "device": "cpu: fake", "figures": [
        {"figure": "tokens/s", "unit": "tokens/s", "scratchlm": 3.0, "peer": 4.0, "peer_name": "hf",
         "ratio": 0.75, "higher_is_better": True}]}))
''')
BROKEN = "raise SystemExit('no GPU here')\n"
COMMON = "def device_description():\n    return 'fake: device'\n"


@pytest.fixture
def bench_dir(tmp_path):
    folder = tmp_path / "repo" / "benchmarks"
    folder.mkdir(parents=True)
    for name, text in {"__init__": "", "common": COMMON, "fast": FAST, "plain": PLAIN, "broken": BROKEN}.items():
        (folder / f"{name}.py").write_text(text)
    return folder


def test_table_json_and_plot(bench_dir, tmp_path, capsys):
    out_json, out_png = tmp_path / "r" / "bench.jsonl", tmp_path / "r" / "ratios.png"
    status = main(["bench", "--benchmarks", str(bench_dir), "--suite", "fast,plain,broken,encoder",
                   "--json", str(out_json), "--plot", str(out_png)])
    assert status == 1  # one suite failed
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].split() == ["suite", "figure", "scratchlm", "peer", "scratchlm", "vs", "peer", "device"]
    fast_row = next(line for line in lines if line.startswith("fast") and "words/s" in line)
    assert "200 words/s" in fast_row and "100 words/s (gensim 4)" in fast_row and "2.0x faster" in fast_row
    assert "cpu: fake" in fast_row
    step_row = next(line for line in lines if line.startswith("fast") and "step time" in line)
    assert "0.5 s" in step_row and "0.25 s (torch)" in step_row and "0.5x (slower)" in step_row  # twice the time
    assert "0.75x (slower)" in next(line for line in lines if line.startswith("plain"))
    assert any(line.startswith("encoder") and "not available" in line for line in lines)
    assert any(line.startswith("broken") and "failed" in line and "exit status 1" in line for line in lines)
    assert "device: cpu: fake; jax " in printed and "e+" not in printed

    saved = [json.loads(line) for line in out_json.read_text().splitlines()]  # one JSON line per suite
    assert [e["suite"] for e in saved] == ["fast", "plain", "broken", "encoder"]
    assert all({k: e[k] for k in ("device", "quick", "peers")} == {"device": "cpu: fake", "quick": False,
                                                                    "peers": True} for e in saved)
    assert all(e["jax"] and e["date"][:4].isdigit() for e in saved)
    by_suite = {e["suite"]: e for e in saved}
    assert by_suite["fast"]["result"]["argv"] == [] and by_suite["fast"]["result"]["benchmark"] == "fast"
    assert by_suite["encoder"]["status"] == "not available" and by_suite["broken"]["status"] == "failed"
    ratios = [(r["suite"], r["figure"], r["ratio"], r["verdict"]) for e in saved for r in e["rows"]
              if r["ratio"] is not None]
    assert ratios == [("fast", "words/s", 2.0, "2.0x faster"), ("fast", "step time", 2.0, "0.5x (slower)"),
                      ("plain", "tokens/s", 0.75, "0.75x (slower)")]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_is_passed_to_a_suite_that_has_it_and_refused_for_one_that_has_not(bench_dir, tmp_path, capsys,
                                                                               monkeypatch):
    out_json = tmp_path / "quick.jsonl"
    assert main(["bench", "--benchmarks", str(bench_dir), "--suite", "fast", "--quick", "--json", str(out_json)]) == 0
    (entry,) = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert entry["result"]["argv"] == ["--quick"] and entry["quick"] is True
    capsys.readouterr()
    # named in --suite: refused before anything runs
    marker = tmp_path / "ran"
    (bench_dir / "plain.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + PLAIN)
    assert main(["bench", "--benchmarks", str(bench_dir), "--suite", "fast,plain", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "--quick: plain has no quick setting" in err and "without --quick" in err and not marker.exists()
    # every suite: the one without a quick setting is skipped, saying so
    import scratchlm

    (bench_dir / "broken.py").unlink()
    monkeypatch.setattr(scratchlm, "__file__", str(bench_dir.parent / "scratchlm" / "__init__.py"))
    assert main(["bench", "--quick"]) == 0
    printed = capsys.readouterr().out
    assert any(line.startswith("plain") and "skipped" in line for line in printed.splitlines())
    assert not marker.exists()


@pytest.mark.parametrize("value, unit, shown", [
    (663_743.2, "words/s", "663,700 words/s"), (6.637e5, "words/s", "663,700 words/s"), (12.3456, "s", "12.35 s"),
    (0.000123456, "s", "0.0001235 s"), (1e9, "", "1,000,000,000"), (2, "x", "2 x"), (0, "s", "0 s"),
    (None, "s", "—"), (float("nan"), "s", "—")])
def test_numbers_are_plain_with_their_units(value, unit, shown):
    assert bench.plain(value, unit) == shown


@pytest.mark.parametrize("ratio, higher, unit, words", [
    (1.8, True, "words/s", "1.8x faster"), (0.7, True, "tokens/s", "0.7x (slower)"),
    (0.5, False, "s", "2.0x faster"), (2.0, False, "ms", "0.5x (slower)"), (1.02, True, "tokens/s", "1.0x (same)"),
    (1.1, True, "accuracy", "1.1x better"), (0.9, True, "Spearman", "0.9x (worse)"), (None, True, "s", "")])
def test_which_side_is_faster_in_words(ratio, higher, unit, words):
    assert bench.verdict({"ratio": ratio, "higher_is_better": higher, "unit": unit}) == words


def test_no_peers_and_the_folder_beside_the_installed_package(bench_dir, monkeypatch, capsys):
    import scratchlm

    (bench_dir / "broken.py").unlink()
    (bench_dir / "plain.py").unlink()
    monkeypatch.setattr(scratchlm, "__file__", str(bench_dir.parent / "scratchlm" / "__init__.py"))
    assert bench.find_benchmarks() == bench_dir.resolve()
    assert main(["bench", "--no-peers"]) == 0  # every default suite: the missing ones are "not available"
    printed = capsys.readouterr().out
    for suite in bench.SUITES:
        assert any(line.startswith(suite) and "not available" in line for line in printed.splitlines())
    fast_row = next(line for line in printed.splitlines() if line.startswith("fast") and "words/s" in line)
    assert "gensim" not in fast_row and "—" in fast_row and "peers not run" in printed


def test_device_asked_in_a_child_when_no_suite_ran(bench_dir, capsys):
    assert main(["bench", "--benchmarks", str(bench_dir), "--suite", "glove"]) == 0
    assert "device: fake: device;" in capsys.readouterr().out


def test_missing_benchmarks_folder_is_a_clear_error(tmp_path, monkeypatch):
    import scratchlm

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(scratchlm, "__file__", str(tmp_path / "site-packages" / "scratchlm" / "__init__.py"))
    with pytest.raises(ScratchlmError, match="no benchmarks/ folder beside the installed scratchlm"):
        bench.find_benchmarks()
    assert main(["bench", "--benchmarks", str(tmp_path / "nope")]) == 2


def test_benchmarks_in_the_working_directory_never_run(bench_dir, tmp_path, monkeypatch, capsys):
    """A checkout-like folder around the working directory holds benchmarks/*.py: `scratchlm bench` must not
    execute them (they would run as the user); with no suites beside the package it is one clear error."""
    import scratchlm

    marker = tmp_path / "ran"
    (bench_dir / "fast.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + FAST)
    nested = bench_dir.parent / "some" / "where"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    monkeypatch.setattr(scratchlm, "__file__", str(tmp_path / "site-packages" / "scratchlm" / "__init__.py"))
    assert main(["bench", "--suite", "fast"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scratchlm bench: error: no benchmarks/ folder beside the installed scratchlm")
    assert not marker.exists()


def test_a_suite_of_scores_alone_gets_a_row_that_says_where_they_are(bench_dir, capsys):
    (bench_dir / "scores.py").write_text("import json\nprint(json.dumps({'benchmark': 'scores', 'device': 'cpu: fake', "
                                         "'figures': [], 'results': [{'accuracy': 0.7}]}))\n")
    assert main(["bench", "--benchmarks", str(bench_dir), "--suite", "scores"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("scores"))
    assert "no side-by-side figure (its results: --json)" in row and "cpu: fake" in row


def test_the_recurrent_suites_share_one_body_and_still_take_the_standard_flags():
    """benchmarks/gru.py and lstm.py call benchmarks/_recurrent.py's body; `scratchlm bench` reads a suite's flags
    from its own script's text, so each script must still name both, and the body is no suite of its own."""
    import pathlib

    folder = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
    for suite in ("gru", "lstm"):
        assert bench.supported_flags(folder / f"{suite}.py") == {"--quick", "--no-peers"}, suite
    suites = bench.available_suites(folder)
    assert {"gru", "lstm"} <= set(suites) and "_recurrent" not in suites
