"""The training benchmark's report renders the numbers its measurements return (the measuring runs belong to
`make bench`, not to the tests)."""

from benchmarks import training


def test_render_reports_overhead_and_checkpoint_cost():
    pipe = {"model": "resnet20 (swish)", "batch": 64, "steps": 120, "repeats": 2}
    pipe.update(pipeline=9.5, memory=10.0, overhead=0.05)
    ckpt = {"every": 10, "step": 0.1, "async": 0.02, "sync": 0.25}
    text = training.render(pipe, ckpt, minutes=3.0)
    assert "| tf.data pipeline over real Fashion-MNIST | 9.50 | 5.0% |" in text
    assert "| async | 20.0 | 0.20 |" in text
    assert "| sync | 250.0 | 2.50 |" in text
    assert "One step takes 100.0 ms" in text
