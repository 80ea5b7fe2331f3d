"""The adversarial cases of tools/replay_adversarial.py, one module per class of failure.

Each module lists CASES: Case(item, name, run), where `item` is the number of the point in the
reliability issue (docs/RELIABILITY.md) and `run(work)` does what a careless or hostile user
would, in a fresh folder `work`, through the command line only (real `python -m app.<command>`
processes), and returns (held, detail): held is True when the application did the right thing
(refused in one line with exit status 2, resumed to the same weights, ...), detail one line
saying what it saw.
"""

MODULES = ("ownership", "resume", "cluster", "selection", "untrusted", "bad_input")
