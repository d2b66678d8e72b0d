"""MLM training throughput of the BERT encoder: scratchlm (JAX) beside HuggingFace's BertForMaskedLM (PyTorch).

    python benchmarks/encoder.py --bf16                 # BERT-base, seq 128 and 512 (GPU)
    python benchmarks/encoder.py --quick                # tiny shapes, for a CPU

Both do the same work: the same model (BERT-base: 12 layers, hidden 768, 12 heads, vocabulary
30,522) on the same random ids (``[CLS] … [SEP]`` rows, no padding), the same task and the same
optimizer.  Each step masks a fresh exact 15% of the non-special tokens per row (80% ``[MASK]``, 10%
random, 10% kept: scratchlm.training.pretrain.mask_tokens, and its transcription in PyTorch below),
runs the encoder over the masked rows, gathers the K selected positions, decodes only those through
the MLM head (transform, LayerNorm, tied decoder) and takes the mean cross-entropy; AdamW at 1e-4
with 100 warmup steps, decay 0.01 off biases and LayerNorms, global-norm clip 1.0.  Both losses
therefore start at ln V and agree within noise.  The ids are uniform on [1000, V), V' = V - 1000
of them, so no model can beat 0.8 ln V' + 0.2 (ln 2 + ln V' / 2) = 0.9 ln V' + 0.2 ln 2 (9.40 for
BERT-base): the 80% [MASK]ed positions carry no information, and of the 20% shown a token half show
the label itself (the kept 10%), which at best earns p = 1/2 ("loss_floor" in the JSON).
``--hf-all-positions`` runs HuggingFace's usual recipe instead
(``BertForMaskedLM(labels=...)``: every one of the T positions decoded), which is more work.

The figures are training tokens/s and MFU:

    MFU = tokens/s x FLOPs/token / peak,  FLOPs/token = 6N + 12 L H T + 6 (H^2 + H V) K / T

(PaLM, Chowdhery et al. 2022, appendix B; N the encoder's weights, K = 0.15 T predicted positions
through the MLM head: scratchlm.models.bert.flops_per_token), charged alike to both.  The peak is
the device's dense bf16 figure (scratchlm.training.pretrain.PEAK_BF16_FLOPS); on a CPU MFU is omitted.
scratchlm's GPU path: bf16 compute with float32 parameters and softmax, cuDNN flash attention,
the whole step jitted with the state donated, no host sync inside the timed loop.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/tokenizers.py would
# shadow HuggingFace's `tokenizers` package that transformers imports: use the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import (  # noqa: E402
    figure,
    in_own_process,
    report,
    time_scratchlm_training,
    time_torch_training,
)


def _configs(quick: bool):
    from scratchlm.models import bert

    if quick:  # a CPU-sized encoder: 2 layers, hidden 128
        return bert.BertConfig(vocab_size=8000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=512, max_position_embeddings=512)
    return bert.BertConfig()  # BERT-base (Devlin et al. 2019): 12 x 768, 12 heads, 30,522


def bench_scratchlm(quick: bool, seq_len: int, batch: int, steps: int, bf16: bool, fused: bool) -> dict:
    import dataclasses

    import jax
    import numpy as np

    from scratchlm.models import bert
    from scratchlm.training import pretrain as P

    config = _configs(quick)
    cfg = dataclasses.replace(config, dtype="bfloat16" if bf16 else "float32", fused_attention=fused,
                              attention_probs_dropout_prob=0.0 if fused else config.attention_probs_dropout_prob)
    masking = P.MaskingConfig(mask_token_id=103, vocab_size=cfg.vocab_size)
    key = jax.random.key(0, impl="rbg")  # dropout from the hardware generator, as in pretrain()
    params = bert.init(key, cfg)
    del params["pooler"]
    params["cls"] = bert.init_mlm_head(key, cfg)
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, cfg.vocab_size, (batch, seq_len)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 101, 102
    data = jax.device_put(P.make_batches(ids, (101, 102, 0)))  # one batch kept on the device
    run = time_scratchlm_training(lambda p, b, k: P.mlm_loss(p, b, k, config=cfg, masking=masking), params, key,
                                  data, steps, settle=2)
    return {"tokens_per_s": steps * batch * seq_len / run["seconds"], "compile_seconds": run["compile_seconds"],
            "loss": run["loss"], "parameters": bert.count_params(run["state"].params)}


def bench_huggingface(quick: bool, seq_len: int, batch: int, steps: int, bf16: bool, fused: bool,
                      all_positions: bool = False) -> dict | None:
    config = _configs(quick)
    try:
        import torch
        import transformers
    except ImportError:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fields = {k: v for k, v in config.to_hf_dict().items() if k not in ("model_type", "scratchlm_pre_layer_norm")}
    attention_dropout = 0.0 if fused else config.attention_probs_dropout_prob  # as scratchlm's run
    hf_config = transformers.BertConfig(**{**fields, "attention_probs_dropout_prob": attention_dropout})
    hf_config._attn_implementation = "sdpa"  # PyTorch's fused attention (flash on GPU)
    model = transformers.BertForMaskedLM(hf_config).to(device).train()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, config.vocab_size, (batch, seq_len), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    ids = ids.to(device)
    V, H = config.vocab_size, config.hidden_size
    K = round(0.15 * seq_len)  # MaskingConfig.max_predictions: the slots per row
    n = round(0.15 * (seq_len - 2))  # selected per row: 15% of the candidates ([CLS], [SEP] never)
    special = torch.zeros(batch, seq_len, dtype=torch.bool, device=device)
    special[:, 0] = special[:, -1] = True
    unused = torch.arange(K, device=device)[None, :] >= n  # slots past n_b carry no label
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16)

    def mask_tokens():
        """scratchlm.training.pretrain.mask_tokens in PyTorch: a uniform K-subset of the candidates, 80/10/10."""
        u = torch.rand(batch, seq_len + 2 * K, device=device)
        _, positions = torch.where(special, -1.0, u[:, :seq_len]).topk(K, dim=1)  # [B, K]
        labels = ids.gather(1, positions)
        random_ids = torch.clamp((u[:, seq_len + K:] * V).long(), max=V - 1)
        kind = u[:, seq_len:seq_len + K]
        new = torch.where(kind < 0.8, 103, torch.where(kind < 0.9, random_ids, labels))
        new = torch.where(unused, labels, new)
        return ids.scatter(1, positions, new), positions, torch.where(unused, -100, labels)

    def loss():
        masked, positions, labels = mask_tokens()
        with autocast:
            if all_positions:  # HuggingFace's recipe: labels at the selected positions, all T decoded
                full = torch.full_like(ids, -100).scatter(1, positions, labels)
                return model(input_ids=masked, labels=full).loss
            # the same work as scratchlm: decode the K selected positions only
            h = model.bert(input_ids=masked).last_hidden_state  # [B, T, H]
            h_S = h.gather(1, positions[..., None].expand(-1, -1, H))  # [B, K, H]
            logits = model.cls(h_S).float()  # [B, K, V]; the loss in float32, as scratchlm's
            return torch.nn.functional.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100)

    run = time_torch_training(model, loss, steps, no_decay=lambda n: n.endswith("bias") or "LayerNorm" in n,
                              warmup=3, device=device)
    recipe = "all T positions decoded" if all_positions else "K selected positions decoded, as scratchlm"
    return {"tokens_per_s": steps * batch * seq_len / run["seconds"], "loss": run["loss"],
            "name": f"transformers {transformers.__version__} BertForMaskedLM (torch {torch.__version__}, {device}"
                    + (", bf16 autocast" if bf16 else "") + f", sdpa; {recipe})"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", default=None, help="comma-separated sequence lengths (default 128,512; quick: 128)")
    parser.add_argument("--batch-size", default=None,
                        help="batch size per length, comma-separated (default: GPU 256,64; quick 8)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default GPU 20, CPU 5)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 compute (HF: autocast)")
    parser.add_argument("--no-fused", action="store_true", help="plain attention equations instead of the fused kernel")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (2 layers, hidden 128) for a CPU")
    parser.add_argument("--no-peers", action="store_true", help="skip HuggingFace")
    parser.add_argument("--hf-all-positions", action="store_true",
                        help="HuggingFace decodes all T positions (its usual recipe; more work than scratchlm's)")
    args = parser.parse_args(argv)

    import jax

    from scratchlm.models import bert
    from scratchlm.training.pretrain import peak_flops

    on_gpu = jax.devices()[0].platform == "gpu"
    config = _configs(args.quick)
    seqs = [int(s) for s in (args.seq or ("128" if args.quick else "128,512")).split(",")]
    default_batch = {128: 256, 512: 64} if on_gpu else {}
    batches = ([int(b) for b in args.batch_size.split(",")] if args.batch_size else
               [default_batch.get(s, 8) for s in seqs])
    if len(batches) == 1:
        batches = batches * len(seqs)
    steps = args.steps or (20 if on_gpu else 5)
    peak = peak_flops()
    figures, runs = [], []
    for seq_len, batch in zip(seqs, batches):
        # each side in a fresh process: timed after scratchlm's steps in one process, a PyTorch peer ran 15-20 %
        # slower (benchmarks/notes/2026-12-05-round7.md)
        shape = {"quick": args.quick, "seq_len": seq_len, "batch": batch, "steps": steps, "bf16": args.bf16,
                 "fused": not args.no_fused}
        ours = in_own_process("benchmarks.encoder", "bench_scratchlm", **shape)
        peer = None if args.no_peers else in_own_process("benchmarks.encoder", "bench_huggingface", **shape,
                                                         all_positions=args.hf_all_positions)
        flops = bert.flops_per_token(config, seq_len, round(0.15 * seq_len))
        peer_tps = peer["tokens_per_s"] if peer else None
        figures.append(figure(f"MLM training tokens/s, seq {seq_len}, batch {batch}", ours["tokens_per_s"], peer_tps,
                              unit="tokens/s", peer_name=peer["name"] if peer else None))
        if peak:
            figures.append(figure(f"MFU, seq {seq_len}", ours["tokens_per_s"] * flops / peak,
                                  peer_tps * flops / peak if peer_tps else None, unit="fraction of peak bf16",
                                  peer_name=peer["name"] if peer else None))
        runs.append({"seq": seq_len, "batch": batch, "flops_per_token": flops, "scratchlm": ours,
                     "huggingface": peer})
    return report("encoder", figures, model="quick (2x128)" if args.quick else "BERT-base (12x768, 12 heads)",
                  bf16=args.bf16, fused_attention=not args.no_fused, steps=steps, peak_flops=peak, runs=runs,
                  hf_recipe="all positions decoded" if args.hf_all_positions else "same work as scratchlm",
                  loss_floor=0.9 * math.log(config.vocab_size - 1000) + 0.2 * math.log(2))


if __name__ == "__main__":
    main()
