"""compile_model from several threads: torch.export keeps process-wide state, so imports are
serialised (compiler/importer.py IMPORT_LOCK); both compiles succeed and are right."""

import threading

import torch

import flashlift
from conftest import rel_err
from test_foundation import PlainAttention


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(8, 16), torch.nn.Linear(16, 8)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_two_threads_compile_different_models_at_once():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 16, 8) for _ in range(3))
    jobs = [(PlainAttention(), (q, k, v)), (MLP(), (q,))]
    results = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def compile_one(i):
        model, args = jobs[i]
        start.wait()  # (before the lock, both exports ran at once and failed each other)
        try:
            results[i] = flashlift.compile_model(model, args)
        except Exception as e:  # reported below, with the thread's model
            results[i] = e

    threads = [threading.Thread(target=compile_one, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (model, args), compiled in zip(jobs, results):
        assert isinstance(compiled, flashlift.CompiledModel), f"{type(model).__name__}: {compiled}"
        assert rel_err(compiled(*args), model(*args)) < 1e-5
    assert len(results[0].report.raised) == 1
