"""One rank of a mixed Go/Python ring job for the Group tests.

Joins a strict ring group and all-sums the same deterministic data as the Go
ranks: element i of rank r is (r+1) * ((i % 7) - 3) / 2. Checks the sum, then
prints one line; exits with status 1 when the sum is wrong.
"""
import sys

import mlx.core as mx

N = 1000

group = mx.distributed.init(backend="ring", strict=True)
rank, size = group.rank(), group.size()

i = mx.arange(N, dtype=mx.float32)
x = (rank + 1) * ((i % 7) - 3) / 2
total = mx.distributed.all_sum(x, group=group, stream=mx.cpu)
mx.eval(total)

want = (size * (size + 1) / 2) * ((i % 7) - 3) / 2
if not mx.array_equal(total, want).item():
    print(f"python rank {rank}/{size}: wrong all_sum", file=sys.stderr, flush=True)
    sys.exit(1)
print(f"python rank {rank}/{size}: all_sum ok", flush=True)
