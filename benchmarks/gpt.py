"""GPT-2 training throughput and cached generation: scratchlm (JAX) beside HuggingFace's GPT2LMHeadModel (PyTorch).

    python benchmarks/gpt.py --bf16                  # GPT-2 small, seq 1024 (GPU)
    python benchmarks/gpt.py                         # GPT-2 small, seq 256 (CPU)
    python benchmarks/gpt.py --quick                 # a tiny decoder, for a smoke run

Training: both do the same work, GPT-2 small (12 layers, 768 wide, 12 heads, vocabulary 50,257, tied
head) on the same uniform random ids, the mean next-token cross-entropy over all T-1 targets (HF's
``labels=input_ids``), AdamW at 1e-4 with 100 warm-up steps, decay 0.01 off biases and layer norms,
global-norm clip 1.0; dropout 0 in both (nanoGPT's pretraining setting; it also keeps the fused attention
kernel usable).  Both losses start at about ln V = 10.8.  The figures are training tokens/s and MFU:

    MFU = tokens/s x FLOPs/token / peak,  FLOPs/token = 6N + 12 L H T

(scratchlm.models.gpt.flops_per_token, N including the tied head), charged alike to both; the peak is
the device's dense bf16 figure (scratchlm.training.pretrain.PEAK_BF16_FLOPS); on a CPU MFU is omitted.

Generation: greedy continuation of a 32-token prompt by ``--new-tokens`` tokens at batch 1 and 32, through
scratchlm's static key/value cache (one prefill, one jitted step per token) and HuggingFace's
``generate(do_sample=False)`` with its dynamic cache; no end-of-text stop, so both generate every token.
Generated tokens/s = B x new tokens / seconds, after one untimed call (compilation, warm-up).

Each measurement runs in a fresh process (:func:`benchmarks.common.in_own_process`): timed after
scratchlm's steps in the same process, HuggingFace's training ran 15-20 % slower than alone.  A process
also runs 5-10 % slower right after another heavy one, so training runs ``--rounds`` times a side, the
first side alternating (scratchlm, HF, HF, scratchlm, ...), and the figure is each side's median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/tokenizers.py would
# shadow HuggingFace's `tokenizers` package that transformers imports: use the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import figure, in_own_process, report, time_scratchlm_training, time_torch_training  # noqa: E402

PROMPT = 32


def _config(quick: bool, bf16: bool, fused: bool):
    from scratchlm.models import gpt

    shape = dict(vocab_size=8000, n_positions=512, n_embd=128, n_layer=2, n_head=2) if quick else {}
    return gpt.GPTConfig(**shape, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, eos_token_id=None,
                         bos_token_id=None, dtype="bfloat16" if bf16 else "float32", fused_attention=fused)


def train_scratchlm(quick: bool, bf16: bool, fused: bool, seq_len: int, batch: int, steps: int) -> dict:
    import jax
    import numpy as np

    from scratchlm.models import gpt
    from scratchlm.models.bert import count_params
    from scratchlm.training.causal_lm import lm_loss

    config = _config(quick, bf16, fused)
    key = jax.random.key(0, impl="rbg")
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (batch, seq_len)).astype(np.int32)
    data = jax.device_put({"input_ids": ids})
    run = time_scratchlm_training(lambda p, b, k: lm_loss(p, b, k, config=config), gpt.init(key, config), key, data,
                                  steps, settle=1)
    return {"tokens_per_s": steps * batch * seq_len / run["seconds"], "compile_seconds": run["compile_seconds"],
            "loss": run["loss"], "parameters": count_params(run["state"].params)}


def _hf_model(config, device):
    import transformers

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    fields = {k: v for k, v in config.to_hf_dict().items() if k not in ("architectures", "model_type")}
    hf_config = transformers.GPT2Config(**fields)
    hf_config._attn_implementation = "sdpa"  # PyTorch's fused attention (flash on GPU)
    return transformers.GPT2LMHeadModel(hf_config).to(device)


def train_huggingface(quick: bool, bf16: bool, fused: bool, seq_len: int, batch: int, steps: int) -> dict | None:
    config = _config(quick, bf16, fused)
    try:
        import torch
        import transformers
    except ImportError:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = _hf_model(config, device).train()
    ids = torch.randint(0, config.vocab_size, (batch, seq_len), generator=torch.Generator().manual_seed(0)).to(device)
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16)

    def loss():
        with autocast:
            return model(input_ids=ids, labels=ids).loss

    run = time_torch_training(model, loss, steps, no_decay=lambda n: n.endswith("bias") or ".ln_" in n, warmup=2,
                              device=device)
    return {"tokens_per_s": steps * batch * seq_len / run["seconds"], "loss": run["loss"],
            "name": f"transformers {transformers.__version__} GPT2LMHeadModel (torch {torch.__version__}, {device}"
                    + (", bf16 autocast" if bf16 else "") + ", sdpa)"}


def generate_scratchlm(quick: bool, bf16: bool, fused: bool, batch: int, new_tokens: int) -> dict:
    import jax
    import numpy as np

    from scratchlm.models import gpt

    config = _config(quick, bf16, fused)
    params = gpt.init(jax.random.key(0), config)
    ids = np.random.default_rng(1).integers(0, config.vocab_size, (batch, PROMPT))
    t0 = time.perf_counter()
    gpt.generate(params, ids, config=config, max_new_tokens=new_tokens)  # compiles prefill and the step
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = gpt.generate(params, ids, config=config, max_new_tokens=new_tokens)
    seconds = time.perf_counter() - t0
    return {"tokens_per_s": out.size / seconds, "first_call_seconds": first}


def generate_huggingface(quick: bool, bf16: bool, fused: bool, batch: int, new_tokens: int) -> dict | None:
    config = _config(quick, bf16, fused)
    try:
        import torch
        import transformers
    except ImportError:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = _hf_model(config, device).eval()
    if bf16:
        model = model.to(torch.bfloat16)
    ids = torch.randint(0, config.vocab_size, (batch, PROMPT), generator=torch.Generator().manual_seed(1)).to(device)
    kwargs = {"do_sample": False, "max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "pad_token_id": 0,
              "eos_token_id": None, "attention_mask": torch.ones_like(ids)}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        model.generate(ids, **kwargs)
        sync()
        t0 = time.perf_counter()
        out = model.generate(ids, **kwargs)
        sync()
    seconds = time.perf_counter() - t0
    return {"tokens_per_s": batch * (out.shape[1] - PROMPT) / seconds,
            "name": f"transformers {transformers.__version__} GPT2LMHeadModel.generate (torch {torch.__version__}, "
                    f"{device}" + (", bf16" if bf16 else "") + ", greedy, dynamic cache)"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=None, help="training sequence length (default GPU 1024, CPU 256, "
                                                              "quick 64)")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch (default GPU 16, CPU 4, quick 4)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps (default GPU 20, CPU 3)")
    parser.add_argument("--new-tokens", type=int, default=None, help="generated tokens (default 128, quick 16)")
    parser.add_argument("--gen-batches", default="1,32",
                        help="generation batch sizes, comma-separated ('': no generation)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 compute (HF: autocast / bf16 weights)")
    parser.add_argument("--no-fused", action="store_true", help="plain attention equations instead of the fused kernel")
    parser.add_argument("--quick", action="store_true", help="a tiny decoder (2 layers, 128 wide) for a smoke run")
    parser.add_argument("--no-peers", action="store_true", help="skip HuggingFace")
    parser.add_argument("--rounds", type=int, default=2,
                        help="training runs of each side, each its own process, first side alternating (medians)")
    args = parser.parse_args(argv)

    import jax

    from scratchlm.models import gpt
    from scratchlm.training.pretrain import peak_flops

    on_gpu = jax.devices()[0].platform == "gpu"
    config = _config(args.quick, args.bf16, not args.no_fused)
    seq = args.seq or (64 if args.quick else 1024 if on_gpu else 256)
    batch = args.batch_size or (16 if on_gpu and not args.quick else 4)
    steps = args.steps or (20 if on_gpu else 3)
    new_tokens = args.new_tokens or (16 if args.quick else 128)
    peak = peak_flops()
    flops = gpt.flops_per_token(config, seq)

    shape = {"quick": args.quick, "bf16": args.bf16, "fused": not args.no_fused}
    runs = {"scratchlm": [], "huggingface": []}
    for r in range(args.rounds):  # ABBA: a process runs slower after a heavy one, so each side goes first in turn
        order = ("scratchlm", "huggingface") if r % 2 == 0 else ("huggingface", "scratchlm")
        for side in order if not args.no_peers else ("scratchlm",):
            runs[side].append(in_own_process("benchmarks.gpt", f"train_{side}", **shape, seq_len=seq, batch=batch,
                                             steps=steps))
    ours = {**runs["scratchlm"][0], "tokens_per_s": statistics.median(x["tokens_per_s"] for x in runs["scratchlm"]),
            "tokens_per_s_runs": [x["tokens_per_s"] for x in runs["scratchlm"]]}
    peer = None if args.no_peers or None in runs["huggingface"] else {
        **runs["huggingface"][0], "tokens_per_s": statistics.median(x["tokens_per_s"] for x in runs["huggingface"]),
        "tokens_per_s_runs": [x["tokens_per_s"] for x in runs["huggingface"]]}
    peer_tps, peer_name = (peer["tokens_per_s"], peer["name"]) if peer else (None, None)
    figures = [figure(f"training tokens/s, seq {seq}, batch {batch}", ours["tokens_per_s"], peer_tps,
                      unit="tokens/s", peer_name=peer_name)]
    if peak:
        figures.append(figure(f"training MFU, seq {seq}", ours["tokens_per_s"] * flops / peak,
                              peer_tps * flops / peak if peer_tps else None, unit="fraction of peak bf16",
                              peer_name=peer_name))
    generation = []
    for b in (int(x) for x in args.gen_batches.split(",") if x.strip()):
        g_ours = in_own_process("benchmarks.gpt", "generate_scratchlm", **shape, batch=b, new_tokens=new_tokens)
        g_peer = None if args.no_peers else in_own_process("benchmarks.gpt", "generate_huggingface", **shape,
                                                           batch=b, new_tokens=new_tokens)
        figures.append(figure(f"greedy generation tokens/s, batch {b}, {new_tokens} new tokens",
                              g_ours["tokens_per_s"], g_peer["tokens_per_s"] if g_peer else None,
                              unit="tokens/s", peer_name=g_peer["name"] if g_peer else None))
        generation.append({"batch": b, "scratchlm": g_ours, "huggingface": g_peer})
    return report("gpt", figures, model="quick (2x128)" if args.quick else "GPT-2 small (12x768, 12 heads)",
                  bf16=args.bf16, fused_attention=not args.no_fused, steps=steps, seq=seq, batch=batch,
                  flops_per_token=flops, peak_flops=peak, training={"scratchlm": ours, "huggingface": peer},
                  generation=generation, prompt_tokens=PROMPT)


if __name__ == "__main__":
    main()
