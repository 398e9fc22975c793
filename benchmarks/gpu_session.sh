#!/usr/bin/env bash
# One lent-GPU session, prepared in advance (docs/mini.md, "What a lent GPU session has to plan
# around"): train mini's 64 px decoder for a time box, export it in fp16 into $OUT so it comes
# back, then run the GPU render benchmark. Run from the repository root on the device, the
# training and the benchmark as two commands (together they overrun a command's 10 minutes):
#
#   OUT=$OUT MINUTES=6 BENCH=0 benchmarks/gpu_session.sh          # first session: a fresh decoder
#   OUT=$OUT TRAIN=0 benchmarks/gpu_session.sh                    # then the benchmark
#   OUT=$OUT MINUTES=6 BENCH=0 INIT=.carry/decoder benchmarks/gpu_session.sh   # later: warm start from
#                                                                 # the decoder the last session brought back
#   OUT=$OUT MINUTES=3 BENCH=0 RESUME=1 benchmarks/gpu_session.sh # again on the same warm machine: go on
#                                                                 # training the decoder of the call before
#
# Each call without RESUME=1 starts clean: it first removes what the training part wrote into
# RUN before (RUN/clip, RUN/cache, RUN/decoder, RUN/config.json; nothing else in RUN), so a
# second call on the same warm machine trains afresh instead of stopping at the decoder's old
# checkpoint. RESUME=1 keeps them: the cache is reused (built only when RUN has none) and the
# decoder stage gets --resume, continuing from its checkpoint (state.pt, Adam included) for
# another MINUTES (INIT is then ignored: it only warm-starts a decoder that has no checkpoint).
#
# Environment (all optional but OUT):
#   OUT          folder whose files come back (at most 8 files; this writes 5 or 6)
#   CONFIG       training configuration (default gpu; smoke for a CPU dry run)
#   MINUTES      decoder time box in minutes (default 6)
#   N_IMAGES     scenes in the training cache (default 50000)
#   INIT         folder with an exported decoder (mini_decoder.safetensors + .json) to start from
#   SETS         extra --set KEY=VALUE arguments for the decoder stage, space-separated
#   TRAIN, BENCH 1 or 0: run the training part / the benchmark part (default 1 and 1)
#   BENCH_ARGS   arguments of benchmarks/render_speed.py (default: SD 2.1 unCLIP-H and Kandinsky 2.2
#                architectures with random weights, 768 px, 16 frames, 20 steps, fp16 on cuda, 3 repeats:
#                the first command of docs/performance.md, "GPU", without its --json gpu-768.json)
#   RUN          training run folder (default /tmp/latentlab-gpu-run; it does not come back)
#   RESUME       1: continue the decoder checkpoint in RUN and reuse its cache; 0 (default): start clean
#
# Wheels the device lacks (diffusers, open_clip_torch, ftfy, wcwidth) are installed from .whl/
# when that folder exists (carry it).
set -euo pipefail
: "${OUT:?set OUT to the folder whose files come back}"
CONFIG=${CONFIG:-gpu}
MINUTES=${MINUTES:-6}
N_IMAGES=${N_IMAGES:-50000}
RUN=${RUN:-/tmp/latentlab-gpu-run}
TRAIN=${TRAIN:-1}
RESUME=${RESUME:-0}
BENCH=${BENCH:-1}
BENCH_ARGS=${BENCH_ARGS:---model sd21-unclip-h --model kandinsky-2.2 --size 768 --frames 16 --steps 20 --device cuda --dtype float16 --repeats 3}
PY=${PYTHON:-python3}

if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
{ date -u; nvidia-smi 2>&1 || echo "no nvidia-smi"; "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } > "$OUT/hardware.txt"

if [ "$TRAIN" = 1 ]; then
    start=$(date +%s)
    if [ "$RESUME" = 1 ]; then
        resume=--resume
        # the cache stage always builds the cache anew: skipped when RUN has one (the decoder
        # stage refuses to resume on a cache of another CONFIG / N_IMAGES: keep them as they were)
        if [ -f "$RUN/cache/cache.safetensors" ]; then build_cache=0; else build_cache=1; fi
    else
        # start clean: only what the stages below write, not the rest of RUN
        rm -rf "$RUN/clip" "$RUN/cache" "$RUN/decoder" "$RUN/config.json"
        resume= build_cache=1
    fi
    # the steps are chained with &&: bash ignores set -e inside a group that is part of an || list,
    # so without it a failed step would go unnoticed and the script would go on to the benchmark
    {
        # 1. the cache: shapes scenes rendered here and encoded by the shipped CLIP
        { [ "$build_cache" = 0 ] || "$PY" -m latentlab.mini.train --stage cache --config "$CONFIG" --out "$RUN" \
            --init-from latentlab/mini/weights --set cache.n_images="$N_IMAGES"; } &&
        # 2. the decoder, time-boxed; from the decoder the last session brought back when INIT is
        #    set; with RESUME=1 continued from its checkpoint in RUN
        # shellcheck disable=SC2086
        "$PY" -m latentlab.mini.train --stage decoder --config "$CONFIG" --out "$RUN" $resume ${INIT:+--init-from "$INIT"} \
            --set cache.n_images="$N_IMAGES" --set decoder.max_minutes="$MINUTES" $(for s in ${SETS:-}; do printf -- '--set %s ' "$s"; done) &&
        # 3. its EMA weights in fp16 (one file of about 9.4 MB for the gpu configuration)
        #    (its manifest.json records the stage's command line and config)
        "$PY" -m latentlab.mini.export --from "$RUN" --to "$OUT/decoder" --stages decoder &&
        echo "training part: $(( $(date +%s) - start )) s"
    } > "$OUT/train.log" 2>&1 || { tail -n 40 "$OUT/train.log"; exit 1; }
    tail -n 3 "$OUT/train.log"
fi

if [ "$BENCH" = 1 ]; then
    # shellcheck disable=SC2086
    "$PY" benchmarks/render_speed.py $BENCH_ARGS > "$OUT/render_speed.txt" 2>&1 || { tail -n 40 "$OUT/render_speed.txt"; exit 1; }
    tail -n 25 "$OUT/render_speed.txt"
fi
