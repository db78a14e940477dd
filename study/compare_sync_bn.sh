#!/usr/bin/env bash
# study/compare_sync_bn.sh — the SyncBatchNorm comparison of docs/study/sync_bn.md, per seed:
# BatchNorm at batch 2 and at batch 4 in one process, then 2 ranks x batch 2 data-parallel with
# local BatchNorm and with SyncBatchNorm; merges every run into OUT/sync_bn.csv.
# Usage: bash study/compare_sync_bn.sh [NORMKIT] [OUT] [SEED...]  (defaults: build/normkit docs/study 1)
# Extra `normkit study` options go in STUDY_ARGS (default: the committed sweep's settings).
set -euo pipefail
NK=${1:-build/normkit}
OUT=${2:-docs/study}
shift $(( $# < 2 ? $# : 2 ))
SEEDS=${*:-1}
ARGS=${STUDY_ARGS:---epochs 2 --train-subset 30000}
MPI=(mpiexec --oversubscribe --allow-run-as-root -np 2 -x OMP_NUM_THREADS=1)
tmp=$(mktemp -d)
mkdir -p "$OUT"
echo "mode,norm,ranks,batch_per_rank,global_batch,epochs,train_images,lr,seed,train_loss,test_error,wall_s,images_per_s" > "$tmp/all.csv"
for s in $SEEDS; do
  set -x
  "$NK" study --norms bn --batches 2,4 --seed "$s" --jobs 2 $ARGS --no-plot --out "$tmp/single_$s"
  "${MPI[@]}" "$NK" study --dp local --batches 2 --seed "$s" $ARGS --out "$tmp/local_$s"
  "${MPI[@]}" "$NK" study --dp sync --batches 2 --seed "$s" $ARGS --out "$tmp/sync_$s"
  { set +x; } 2>/dev/null
  # results.csv: norm,batch,epochs,train_images,lr,seed,train_loss,test_error,wall_s,images_per_s
  awk -F, 'NR > 1 { print "single," $1 ",1," $2 "," $2 "," $3 "," $4 "," $5 "," $6 "," $7 "," $8 "," $9 "," $10 }' \
    "$tmp/single_$s/results.csv" >> "$tmp/all.csv"
  tail -n +2 "$tmp/local_$s/dp_local.csv" >> "$tmp/all.csv"
  tail -n +2 "$tmp/sync_$s/dp_sync.csv" >> "$tmp/all.csv"
done
cp "$tmp/all.csv" "$OUT/sync_bn.csv"
echo "wrote $OUT/sync_bn.csv"
cat "$OUT/sync_bn.csv"
