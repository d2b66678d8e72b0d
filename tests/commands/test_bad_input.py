"""Every command against each kind of bad input: exit status 2, one ``scratchlm CMD: error: ...`` line on
standard error, no traceback (issue 23, point 4).

Run in this process through :func:`scratchlm.cli.main`.  For the mistakes a command can see before it
starts (a number out of range, a missing or unreadable input, an output folder it cannot write), the
corpus and task readers are replaced by a function that fails the test: the error must come before any
data is read.  Damaged model files are found when they are read, so those cases run without the guard.
"""

from __future__ import annotations

import json
import os

import pytest

from scratchlm import cli
from scratchlm.data import corpora, tasks

UNWRITABLE = "/proc/scratchlm-test-out"  # no file can be created under /proc, not even by root


@pytest.fixture
def files(tmp_path):
    """Bad inputs of every kind, and one good corpus."""
    f = {}
    f["folder"] = tmp_path / "a-folder"
    f["folder"].mkdir()
    f["missing"] = tmp_path / "no-such-file.txt"
    f["latin1"] = tmp_path / "latin1.txt"
    f["latin1"].write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    f["a_file"] = tmp_path / "a-file"
    f["a_file"].write_text("not a folder\n")
    f["tokenizer"] = tmp_path / "tokenizer.json"
    f["tokenizer"].write_text('{"model": {"type": "WordPiece", "vocab": ')  # cut off mid-way
    f["bert"] = tmp_path / "bert"  # config.json fine, model.safetensors damaged
    f["bert"].mkdir()
    (f["bert"] / "config.json").write_text(json.dumps({
        "model_type": "bert", "vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 32}))
    (f["bert"] / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not safetensors")
    f["bert_json"] = tmp_path / "bert-json"  # config.json damaged
    f["bert_json"].mkdir()
    (f["bert_json"] / "config.json").write_text("{\"model_type\": \"bert\",")
    (f["bert_json"] / "model.safetensors").write_bytes(b"")
    f["gru"] = tmp_path / "gru"  # a gru-lm run folder whose params.msgpack is damaged
    f["gru"].mkdir()
    (f["gru"] / "config.json").write_text(json.dumps({"model": {"vocab_size": 10, "embed_size": 4, "hidden_size": 4,
                                                                 "num_layers": 1}}))
    (f["gru"] / "params.msgpack").write_bytes(b"\xc1 damaged")
    f["gru_json"] = tmp_path / "gru-json"  # a gru-lm run folder whose config.json is damaged
    f["gru_json"].mkdir()
    (f["gru_json"] / "config.json").write_text("{\"model\": ")
    (f["gru_json"] / "params.msgpack").write_bytes(b"")
    f["vectors"] = tmp_path / "vectors.txt"
    f["vectors"].write_text("3 x\nthe 0.1\n")
    f["not_run"] = tmp_path / "notes"  # a folder of the user's, not a run folder
    f["not_run"].mkdir()
    (f["not_run"] / "notes.txt").write_text("keep me\n")
    f["fasttext"] = tmp_path / "labels.txt"
    f["fasttext"].write_text("__label__pos a fine film\n__label__neg a dull one\n")
    f["out"] = tmp_path / "out"
    return f


# (command argv with {placeholders}, a phrase of the expected message)
BEFORE_ANY_WORK = [
    # numbers out of range
    ("word2vec --lr -0.025", "--lr must be a positive"),
    ("word2vec --min-lr 0.5", "--min-lr (0.5) must not exceed --lr"),
    ("word2vec --batch-size 0", "--batch-size must be at least 1"),
    ("word2vec --dim 0", "--dim must be at least 1"),
    ("word2vec --epochs 0", "--epochs must be at least 1"),
    ("word2vec --sample -1", "--sample must be at least 0"),
    ("word2vec --restrict-vocab 0", "--restrict-vocab must be at least 1"),
    ("glove --lr -0.05", "--lr must be a positive"),
    ("glove --lr nan", "--lr must be a number"),
    ("glove --batch-size 0", "--batch-size must be at least 1"),
    ("glove --vocab-size 0", "--vocab-size must be at least 1"),
    ("glove --window 0", "--window must be at least 1"),
    ("glove --x-max 0", "--x-max must be a positive"),
    ("glove --max-memory-mb -1", "--max-memory-mb must be a positive"),
    ("classify --lr -0.1", "--lr must be positive"),
    ("classify --steps 0", "--steps"),
    ("classify --epochs 2", "--epochs only apply to --encoder lstm|gru"),
    ("classify --encoder lstm --steps 5", "--steps only apply to --encoder bag"),
    ("classify --encoder lstm --init minilm", "--init and --freeze only apply to --encoder bag"),
    ("classify --encoder gru --lr 0.1 0.2", "trains at one --lr"),
    ("classify --encoder lstm --lr -1", "--lr must be a positive"),
    ("classify --encoder lstm --hidden 0", "--hidden"),
    ("gru-lm train --lr=-1e-3", "--lr must be a positive"),
    # a negative number in scientific notation is a value, not an option (scratchlm.commands.flags.NEGATIVE_NUMBER)
    ("gru-lm train --lr -1e-3", "--lr must be a positive"),
    ("word2vec --lr -2.5E-2", "--lr must be a positive"),
    ("glove --lr -inf", "--lr must be a positive"),
    ("finetune --task polarity --lr -5e-5", "--lr must be a positive"),
    ("classify --lr 0.1 -1e-2", "--lr must be positive"),
    ("gru-lm train --clip-norm -1", "--clip-norm must be a positive"),
    ("gru-lm train --batch-size 0", "--batch-size must be at least 1"),
    ("gru-lm train --vocab-size 0", "--vocab-size must be at least 1"),
    ("gru-lm train --hidden 0", "--hidden must be at least 1"),
    ("gru-lm train --valid-fraction 1.5", "--valid-fraction must be a fraction"),
    ("gru-lm classify --checkpoint {gru} --lr -1", "--lr must be a positive"),
    ("gru-lm generate --checkpoint {gru} --prompt the --top-p 0", "--top-p must be a fraction"),
    ("gru-lm generate --checkpoint {gru} --prompt the --samples 0", "--samples must be at least 1"),
    ("pretrain --lr=-1e-3", "--lr must be a positive"),
    ("pretrain --lr -1e-3", "--lr must be a positive"),
    ("pretrain --batch-size 0", "--batch-size must be at least 1"),
    ("pretrain --steps 4 --warmup-steps 4", "--warmup-steps must be below --steps"),
    ("pretrain --intermediate 0", "--intermediate must be at least 1"),
    ("pretrain --limit 0", "--limit must be at least 1"),
    ("pretrain --vocab-size 0", "--vocab-size must be at least 1"),
    ("pretrain --hidden 30 --heads 4", "divisible"),
    ("finetune --task polarity --lr=-5e-5", "--lr must be a positive"),
    ("finetune --task polarity --clip-norm -1", "--clip-norm"),
    ("finetune --task polarity --warmup-fraction 1.5", "--warmup-fraction must be a fraction"),
    ("finetune --task polarity --batch-size 0", "--batch-size must be at least 1"),
    ("finetune --task polarity --max-length 0", "--max-length must be at least 3"),
    ("finetune --task polarity --folds 1", "--folds must be at least 2"),
    ("finetune --task polarity --limit 0", "--limit must be at least 1"),
    ("tokenize train --model bpe --vocab-size 0 --corpus lee", "--vocab-size must be at least 1"),
    # options of another model, or of nothing: refused rather than ignored
    ("tokenize train --model bpe --vocab-size 50 --corpus lee --cased", "--cased applies to --model wordpiece only"),
    ("tokenize train --model unigram --vocab-size 50 --corpus lee --score likelihood", "--score applies to"),
    ("tokenize train --model unigram --vocab-size 50 --corpus lee --min-frequency 2", "--min-frequency applies"),
    ("tokenize train --model bpe --vocab-size 50 --corpus lee --special [PAD] [PAD]", "distinct, non-blank"),
    ("glove --epochs 0", "--epochs must be at least 1"),
    # flags another flag makes meaningless were ignored, and recorded as settings
    ("classify --init minilm --dim 32", "--dim sizes a random embedding; --init minilm brings"),
    ("pretrain --init minilm --layers 2 --pre-ln", "--layers, --pre-ln shape a new model; --init minilm brings"),
    ("pretrain --tokenizer {tokenizer} --vocab-size 50", "--vocab-size sizes the tokenizer pretrain trains"),
    ("finetune --task polarity --class-weights -1,1", "--class-weights must be finite, at least 0"),
    ("finetune --task polarity --class-weights 0,0", "not all 0"),
    ("demo --steps ,", "--steps names no step"),
    # input paths: missing, a folder, not UTF-8
    *[(f"{cmd} --corpus {{{kind}}}", phrase)
      for cmd in ("word2vec", "glove", "gru-lm train", "pretrain", "tokenize train --model bpe --vocab-size 50")
      for kind, phrase in (("missing", "no such file"), ("folder", "is a folder"), ("latin1", "is not valid UTF-8"))],
    ("classify --data {folder}", "--data"),
    ("classify --init {missing}", "--init"),
    ("finetune --task {folder}", "--task"),
    ("finetune --task {latin1}", "is not valid UTF-8"),
    ("finetune --task polarity --init {missing}", "--init"),
    ("finetune --task polarity --init {a_file}", "is a file"),
    ("finetune --task polarity --init bad!name", "--init bad!name: no such folder, and not a shipped name (minilm)"),
    ("pretrain --init bad!name", "--init bad!name: no such folder, and not a shipped name (minilm)"),
    ("pretrain --init {missing}", "--init"),
    ("pretrain --tokenizer {folder}", "--tokenizer"),
    ("gru-lm train --tokenizer {missing}", "--tokenizer"),
    ("gru-lm generate --checkpoint {missing} --prompt the", "--checkpoint"),
    ("gru-lm classify --checkpoint {a_file}", "--checkpoint"),
    ("tokenize encode --tokenizer {missing}", "--tokenizer"),
    ("tokenize encode --tokenizer {folder}", "is a folder"),
    # the output folder: unwritable, or a file
    *[(f"{cmd} --out {out}", phrase)
      for cmd in ("word2vec", "glove", "classify", "gru-lm train", "pretrain", "finetune --task polarity", "demo")
      for out, phrase in ((UNWRITABLE, "cannot write"), ("{a_file}", "is a file"))],
    # a folder that is not a run folder: refused before any data is read
    *[(f"{cmd} --out {{not_run}}", "not a scratchlm run folder")
      for cmd in ("word2vec", "glove", "classify", "gru-lm train", "pretrain", "finetune --task polarity")],
    ("tokenize train --model bpe --vocab-size 50 --corpus lee --out {folder}", "is a folder"),
    (f"tokenize train --model bpe --vocab-size 50 --corpus lee --out {UNWRITABLE}/tok.json", "cannot write"),
    ("bench --benchmarks {missing}", "--benchmarks"),
    ("bench --timeout 0", "--timeout must be a positive"),
    ("word2vec --process-id 0", "--process-id goes with --coordinator and --num-processes"),
    ("glove --coordinator 127.0.0.1:23456 --num-processes 0 --process-id 0", "--num-processes must be at least 1"),
    ("bench --suite banana --quick", "--suite: unknown suite(s) ['banana']"),
    ("bench --benchmarks {folder}", "not a benchmarks/ folder"),
    ("bench --benchmarks {a_file}", "a file, not a folder"),
    ("bench --json {folder}", "--json"),
    (f"docs --out {UNWRITABLE}", "cannot write"),
    ("docs --katex {missing}", "--katex"),
    ("docs --out {not_run}", "is not empty and holds no site scratchlm built"),
    ("demo --quick --out {not_run}", "is not empty and is not a demo folder"),
    ("docs --out {out} --screenshot {out}/x.png", "--screenshot goes with --check"),
]

# Damaged model files, found when they are read.
DAMAGED = [
    ("pretrain --init {bert}", "model.safetensors is damaged"),
    ("pretrain --init {bert_json}", "config.json is damaged"),
    ("pretrain --tokenizer {tokenizer}", "is not a tokenizer.json"),
    ("finetune --task polarity --init {bert}", "model.safetensors is damaged"),
    ("finetune --task polarity --init {bert_json}", "config.json is damaged"),
    ("gru-lm train --tokenizer {tokenizer}", "is not a tokenizer.json"),
    ("gru-lm generate --checkpoint {gru} --prompt the", "damaged"),
    ("gru-lm classify --checkpoint {gru_json}", "config.json is damaged"),
    ("tokenize encode --tokenizer {tokenizer}", "is not a tokenizer.json"),
    ("classify --init {vectors}", "vectors.txt"),
    # too few examples for the split, found once the task is read (before the model is); a fastText file
    ("finetune --task {fasttext}", "fastText '__label__X text' lines"),
    ("finetune --task polarity --limit 3", "the task has 3 examples: too few for 5-fold cross-validation"),
    ("finetune --task polarity --limit 6 --folds 8", "too few for 8-fold cross-validation"),
]

_OUT_FLAGS = {"tokenize", "gru-lm generate", "gru-lm classify", "bench", "docs"}


def _argv(line: str, files: dict) -> tuple[str, list[str]]:
    argv = [part.format(**files) for part in line.split()]
    command = argv[0]
    head = " ".join(argv[:2])
    if "--out" not in argv and command not in _OUT_FLAGS and head not in _OUT_FLAGS:
        argv += ["--out", str(files["out"])]
    if head == "tokenize train" and "--out" not in argv:
        argv += ["--out", str(files["out"] / "tokenizer.json")]
    if command == "gru-lm" and argv[1] == "train" or command in ("word2vec", "glove", "pretrain"):
        if "--corpus" not in argv:
            argv += ["--corpus", "lee"]
    return command, argv


def _one_error_line(capsys, command: str, rc: int) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 2, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1 and lines[0].startswith(f"scratchlm {command}: error: "), captured.err
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Reading any corpus or task fails the test: the error had to come first."""
    def work(*args, **kwargs):
        raise AssertionError("the command started reading its data before rejecting a bad input")

    for module, name in ((corpora, "load_corpus"), (corpora, "load_tokenized_corpus"), (corpora, "polarity_sentences"),
                         (corpora, "wikipedia_paragraphs"), (tasks, "read_jsonl"), (tasks, "read_conll"),
                         (tasks, "read_fasttext_labels")):
        monkeypatch.setattr(module, name, work)


@pytest.mark.parametrize("line, phrase", BEFORE_ANY_WORK)
def test_bad_input_is_one_error_line_before_any_work(line, phrase, files, no_work, capsys):
    command, argv = _argv(line, files)
    message = _one_error_line(capsys, command, cli.main(argv))
    assert phrase in message
    assert not files["out"].exists() or not any(files["out"].iterdir())


# Mistakes argparse finds (a flag it does not know, a value of the wrong type): one line too, with the
# command's prefix, not argparse's usage block first (scratchlm.cli._Parser).
ARGPARSE = [
    ("word2vec --corpus lee --dimm 5", "word2vec", "unrecognized arguments: --dimm 5"),
    ("word2vec --corpus lee --dim abc", "word2vec", "argument --dim: invalid int value: 'abc'"),
    ("word2vec --corpus lee --quiet --verbose", "word2vec", "not allowed with argument --quiet"),
    ("gru-lm train --corpus lee --bogus 1", "gru-lm train", "unrecognized arguments: --bogus 1"),
    # a seed the random generators cannot take overflowed in the first draw, after the run folder was made
    *[(f"{cmd} --seed {value}", cmd.split(" --")[0], "argument --seed: must be in [0, 4294967295]")
      for cmd in ("word2vec --corpus lee", "glove --corpus lee", "finetune --task polarity", "pretrain")
      for value in ("99999999999999999999", "-1")],
    ("generate --model x --prompt the --seed 2.5", "generate", "argument --seed: a whole number expected"),
    ("", "", "the following arguments are required: COMMAND"),
]


@pytest.mark.parametrize("line, command, phrase", ARGPARSE)
def test_argparse_mistakes_are_one_error_line(line, command, phrase, files, no_work, capsys):
    argv = [part.format(**files) for part in line.split()]
    if argv and argv[0] not in ("generate",) and "--out" not in argv:
        argv += ["--out", str(files["out"])]
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert stop.value.code == 2 and len(lines) == 1, err
    assert lines[0].startswith(" ".join(["scratchlm", command]).strip() + ": error: ") and phrase in lines[0], err
    assert not files["out"].exists()


@pytest.mark.parametrize("line, phrase", DAMAGED)
def test_damaged_input_files_are_one_error_line(line, phrase, files, capsys):
    command, argv = _argv(line, files)
    if command in ("pretrain", "gru-lm") and "--limit" not in argv and argv[1] != "generate":
        argv += ["--limit", "20"] if command == "pretrain" else []
    message = _one_error_line(capsys, command, cli.main(argv))
    assert phrase in message


def test_a_read_only_out_fails_before_training(files, no_work, capsys, tmp_path):
    """``--out`` under a folder the user cannot write (chmod 555): as root every folder is writable, so
    there the check is the /proc case of the table above."""
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the /proc rows of the table cover this check")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        message = _one_error_line(capsys, "glove", cli.main(["glove", "--corpus", "lee", "--out", str(locked / "o")]))
    finally:
        locked.chmod(0o755)
    assert "cannot write" in message


def test_the_tokenizer_and_the_model_must_agree(files, tmp_path, capsys):
    """A saved encoder without tokenizer.json is paired with MiniLM's (30,522 ids) by finetune: ids outside the
    model's 50-row table would be clamped inside jit, so the batch builder stops it (issue 23, point 9)."""
    import jax

    from scratchlm.models import bert

    config = bert.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=16, max_position_embeddings=64)
    small = tmp_path / "small"
    bert.save_pretrained(small, bert.init(jax.random.key(0), config), config)
    rc = cli.main(["finetune", "--task", "polarity", "--init", str(small), "--limit", "8", "--epochs", "1",
                   "--max-length", "64", "--out", str(tmp_path / "ft")])  # within the model's 64 positions
    assert "is outside [0, 50)" in _one_error_line(capsys, "finetune", rc)


def test_a_bert_needs_a_tokenizer_with_its_special_tokens(tmp_path, capsys):
    """A BERT folder whose tokenizer.json has no [CLS], [SEP] or [PAD] (a byte-level BPE put beside it): named,
    before the run folder is made (it was a traceback from the batch padder)."""
    import jax

    from scratchlm.data import corpora
    from scratchlm.models import bert
    from scratchlm.tokenizers import pipelines

    tok = pipelines.train_bpe(corpora.lee_corpus()[:40], 300, byte_level=True)
    config = bert.BertConfig(vocab_size=300, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=16, max_position_embeddings=64)
    small = tmp_path / "small"
    bert.save_pretrained(small, bert.init(jax.random.key(0), config), config, tokenizer=tok)
    rc = cli.main(["finetune", "--task", "polarity", "--init", str(small), "--limit", "8", "--epochs", "1",
                   "--max-length", "64", "--out", str(tmp_path / "ft")])
    assert "has no [CLS], [SEP], [PAD] token" in _one_error_line(capsys, "finetune", rc)
    assert not (tmp_path / "ft").exists()
    # continuing it with a tokenizer of another vocabulary: its ids would name other rows of the table
    wordpiece = pipelines.train_bert_wordpiece(corpora.lee_corpus()[:40], 200,
                                               special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    wordpiece.save(tmp_path / "wp.json")
    rc = cli.main(["pretrain", "--init", str(small), "--tokenizer", str(tmp_path / "wp.json"), "--corpus", "lee",
                   "--limit", "20", "--out", str(tmp_path / "pt")])
    assert "has 200 tokens, the model of --init" in _one_error_line(capsys, "pretrain", rc)
    assert not (tmp_path / "pt").exists()


def test_help_shows_every_default(capsys):
    """Every option of every command says its default in --help (argparse's, or the config's it resolves to)."""
    parser = cli.build_parser()
    subparsers = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"][0]
    seen = 0
    for name, command in subparsers.choices.items():
        nested = [a for a in command._actions if a.__class__.__name__ == "_SubParsersAction"]
        for sub in (nested[0].choices.values() if nested else [command]):
            text = sub.format_help()
            for action in sub._actions:
                if not action.option_strings or action.help in (None, "==SUPPRESS==") or "-h" in action.option_strings:
                    continue
                if action.required or action.option_strings[0] == "--out":
                    continue  # no default to show (--out: the run-folder rule, issue 23 point 1)
                seen += 1
                assert "default" in sub._get_formatter()._get_help_string(action).lower(), (name, action.dest)
            assert "from LMConfig" in text or name != "gru-lm" or "generate" in text or "classify" in text
    assert seen > 100


def test_version(capsys):
    import scratchlm

    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"scratchlm {scratchlm.__version__}"


def test_pretrain_default_warmup_fits_one_step():
    from scratchlm.training.pretrain import PretrainConfig

    assert PretrainConfig(steps=1).resolved_warmup_steps == 0
    assert PretrainConfig(steps=4).resolved_warmup_steps == 1  # as before the change (max(1, 4 // 10))
    assert PretrainConfig(steps=1000).resolved_warmup_steps == 100


def test_processes_without_a_coordinator_is_one_error_line(tmp_path):
    """``--num-processes`` alone, outside a cluster manager JAX reads: JAX's ValueError was a traceback.  In a
    process of its own, as a user runs it (jax.distributed must start before anything else of JAX)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "scratchlm.cli", "word2vec", "--corpus", "lee", "--num-processes",
                           "1", "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("scratchlm word2vec: error: cannot start the processes"), proc.stderr
