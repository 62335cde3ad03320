"""PyTorch side of bench/run_ddp.py: DistributedDataParallel (gloo backend, CPU) training the MLP
or CNN of examples/ on Fashion-MNIST with --nproc processes, one thread each, same per-rank batch.
Prints one JSON object: global samples/s over --steps steps after --warmup.

Run with Debian's python3-torch: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_ddp.py --model mlp
"""
import argparse
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import cnn, load, mlp  # noqa: E402


def worker(rank, args, port, queue):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank,
                            world_size=args.nproc)
    torch.manual_seed(1)
    x_train, y_train = load("train")
    model = mlp() if args.model == "mlp" else cnn()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    b = args.batch_size
    n = len(x_train)

    def step(i):
        lo = ((i * args.nproc + rank) * b) % (n - b)
        opt.zero_grad()
        loss_fn(ddp(x_train[lo:lo + b]), y_train[lo:lo + b]).backward()
        opt.step()

    for i in range(args.warmup):
        step(i)
    dist.barrier()
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(args.warmup + i)
    dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        queue.put(args.steps * b * args.nproc / dt)
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["mlp", "cnn"], required=True)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128, help="per rank")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(worker, args=(args, port, queue), nprocs=args.nproc, join=True)
    print(json.dumps({"torch": torch.__version__, "nproc": args.nproc, "threads_per_rank": 1,
                      "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
                      "samples_per_s": queue.get()}))


if __name__ == "__main__":
    main()
