# SPDX-License-Identifier: Apache-2.0
"""Export every policy family and tabulate what can be checked without a GPU
(bench/results/export.md): ONNX Runtime vs torch error for the fp32 and fp16 graphs, the
operators used and whether TensorRT's parser supports them, and static (non-batch) shapes.
"""
from __future__ import annotations

import argparse
import sys

from bench.common import Table, write_result
from bench.latency import VARIANTS, prepare, variant_tag


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--dataset', default='dgm/hopper/medium-v0')
    parser.add_argument('--train-steps', type=int, default=2000)
    args = parser.parse_args()

    from dgm_policy_ros.export.tensorrt_ops import (
        graph_ops,
        non_batch_dynamic_dims,
        unsupported_ops,
    )
    from dgm_policy_ros.runtime import load_bundle

    lines = [f'Each family trained {args.train_steps} steps on {args.dataset}, exported, and '
             'checked on 64 random observations (dataset mean ± std) with fixed noise. Errors '
             'are max |ONNX Runtime - torch| in action units (actions span [-1, 1]); a policy '
             'that chooses among candidates can be off by a whole action where fp16 rounding '
             'flips its choice, so the rows (observations) off by more than 1e-2 are counted.',
             '']
    table = Table('algorithm', 'family', 'fp32 max error', 'fp16 max error',
                  'fp16 rows off by > 1e-2', 'ops', 'TensorRT parser', 'static shapes', echo=True)
    for label, algo, settings in VARIANTS:
        bundle = load_bundle(prepare(algo, args.dataset, args.train_steps, fp16=True,
                                     tag=f'parity-{variant_tag(label)}', algo_config=settings))
        errors = bundle.manifest['parity']['onnxruntime_vs_torch_max_abs_error']
        graphs = [bundle.file(g) for g in bundle.manifest['graphs']]
        missing = set().union(*(unsupported_ops(g) for g in graphs))
        dynamic = [n for g in graphs for n in non_batch_dynamic_dims(g)]
        ops = sorted(set().union(*(graph_ops(g) for g in graphs)))
        off = bundle.manifest['parity']['fp16_rows_off']
        table.add(label, bundle.manifest['family'], f"{errors['fp32']:.1e}",
                  f"{errors['fp16']:.1e}", f"{off['over']} of {off['rows']}",
                  f"{len(ops)} ({', '.join(ops)})",
                  'all supported' if not missing else 'MISSING ' + str(sorted(missing)),
                  'yes' if not dynamic else 'no: ' + str(dynamic))
    lines += table.lines()
    lines.append('\nThe fp16 graphs keep fp32 inputs/outputs (onnxconverter-common, '
                 '`keep_io_types`); they are what TensorRT 11 builds strongly typed.')
    body = '\n'.join(lines) + '\n'
    write_result('export', 'Export checks without a GPU: parity, fp16, TensorRT op coverage',
                 body)
    print(body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
