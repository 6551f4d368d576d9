"""All-sum connectivity check for the launcher tests.

Every rank joins a strict ring group and all-sums rank+1, so n ranks print
n(n+1)/2. When ALLSUM_FAIL_RANK names this rank it exits with status 3 right
after joining; the other ranks then sleep until the launcher stops them.
"""
import os
import sys
import time

import mlx.core as mx

group = mx.distributed.init(backend="ring", strict=True)
rank, size = group.rank(), group.size()

fail = os.environ.get("ALLSUM_FAIL_RANK")
if fail is not None:
    if int(fail) == rank:
        print(f"[Rank {rank}/{size}] failing on purpose", file=sys.stderr, flush=True)
        sys.exit(3)
    print(f"[Rank {rank}/{size}] waiting to be stopped", flush=True)
    while True:
        time.sleep(0.2)

result = mx.distributed.all_sum(mx.array([rank + 1.0]), group=group)
mx.eval(result)
print(f"[Rank {rank}/{size}] all_sum result: {result.item()}", flush=True)
