"""Training progress from the first seconds (pfdn_arch/layout/progress.py): a line 15 s after the first iteration,
then every 30 s unless BasicSR's own line came since; the rate measured over the last minute, so the ETA follows
what the machine gives now; the record basicsr schedule reads."""
import json

from pfdn_arch.layout.progress import Progress, duration, read_progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def run(progress, clock, iterations, seconds_each, start=1):
    for it in range(start, start + iterations):
        clock.now += seconds_each
        progress.step(it)
    return start + iterations


def test_the_first_line_comes_within_seconds_with_the_measured_rate_and_eta(tmp_path):
    clock, said = Clock(), []
    record = tmp_path / 'progress.json'
    p = Progress(total=500000, print_freq=100, say=said.append, record=str(record), clock=clock)
    nxt = run(p, clock, 8, 2.0)  # 2 s an iteration (stage 1 on a CPU): BasicSR would first speak at 200 s
    assert said == [] and clock.now == 16.0
    run(p, clock, 1, 2.0, nxt)
    assert len(said) == 1 and said[0].startswith('iter 9/500000: 2.0 s/it')
    assert said[0].endswith('ETA 11d13h')  # (500000 - 9) * 2 s
    saved = read_progress(str(record))
    assert saved['iter'] == 9 and abs(saved['per_second'] - 0.5) < 1e-9


def test_the_eta_follows_the_machine_when_another_job_starts(tmp_path):
    clock, said = Clock(), []
    p = Progress(total=10000, print_freq=10**9, say=said.append, clock=clock)
    nxt = run(p, clock, 200, 0.1)  # 10 it/s
    assert 'ETA' in said[-1] and '10.00 it/s' in said[-1]
    run(p, clock, 400, 0.4, nxt)  # a busy machine: 2.5 it/s for 160 s, longer than the window
    assert '2.50 it/s' in said[-1], said[-1]


def test_basicsrs_own_lines_make_ours_unneeded_after_the_first():
    clock, said = Clock(), []
    p = Progress(total=10000, print_freq=20, say=said.append, clock=clock)
    run(p, clock, 1000, 1.0)  # BasicSR speaks every 20 s: ours only the first, at 15 s
    assert len(said) == 1


def test_a_progress_record_is_checked_before_it_is_believed(tmp_path):
    path = tmp_path / 'progress.json'
    for text in ('{', '[]', json.dumps({'iter': 'x', 'total': 1, 'per_second': 1, 'time': 0})):
        path.write_text(text)
        assert read_progress(str(path)) is None
    assert duration(59) == '0m59s' and duration(3600 * 5 + 60) == '5h01m' and duration(86400 * 21 + 3600) == '21d01h'
