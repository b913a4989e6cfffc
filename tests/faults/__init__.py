"""The fault suite: crashes, restarts, cuts, stalls, hostile frames and threads, with figures.

    python -m tests.faults                   # quick mode (CI runs it as tests/faults/test_faults_quick.py)
    python -m tests.faults --full --record   # full mode; writes tests/faults/RESULTS.md

See tests/faults/README.md for what each scenario does and what it counts.
"""
