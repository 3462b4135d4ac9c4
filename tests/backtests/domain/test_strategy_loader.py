"""A user's own strategy loaded from a file or a module: the one Strategy subclass it defines (or
the one named), and every way it can be broken said in one line naming the file."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from backtests.domain.problems import InvalidRequest
from backtests.domain.strategies import strategy_get
from backtests.domain.strategy_loader import is_user_reference, strategy_load
from tests.support import ROOT
from tests.support.backtest_data import batch_of

GOOD = """
import numpy as np
from backtests.domain.strategies import Parameter, Strategy


class Breakout(Strategy):
    parameters = (Parameter("window", 5, minimum=1),)

    def warmup(self, params):
        return params["window"]

    def signals(self, bars, params, cache):
        return np.zeros(len(bars), dtype=np.int8)
"""


def flags(field: str) -> str:
    return f"--{field}"


def write(folder, name: str, text: str):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def problem(reference: str, **kwargs) -> str:
    with pytest.raises(InvalidRequest) as raised:
        strategy_load(reference, **kwargs)
    assert [p.field for p in raised.value.problems] == ["strategy"]
    line = raised.value.phrase(flags)
    assert "\n" not in line
    return line


def test_names_files_and_modules_are_told_apart():
    assert not is_user_reference("sma") and not is_user_reference("donchian")
    for text in ("mine.py", "strategies/mine.py", "mine.py:Fast", "package.module:NAME", "a.b"):
        assert is_user_reference(text)


def test_a_file_with_one_strategy_is_loaded_with_what_reloads_it(tmp_path):
    path = write(tmp_path, "mine.py", GOOD)
    strategy = strategy_get(str(path))
    assert strategy.name == "breakout" and strategy.defaults == {"window": 5}
    assert strategy.reference == str(path) and len(strategy.digest) == 64
    assert not strategy.builtin
    again = strategy_get(strategy.reference, digest=strategy.digest)  # as a worker does
    assert type(again) is type(strategy)  # the file ran once in this process
    named = strategy_get(f"{path}:Breakout")
    assert named.reference == f"{path}:Breakout" and named.name == "breakout"


def test_a_relative_path_is_kept_absolute(tmp_path, monkeypatch):
    write(tmp_path, "mine.py", GOOD)
    monkeypatch.chdir(tmp_path)
    assert strategy_get("./mine.py").reference == str(tmp_path / "mine.py")


def test_a_file_that_changed_since_the_sweep_began_is_refused(tmp_path):
    path = write(tmp_path, "mine.py", GOOD)
    strategy = strategy_get(str(path))
    path.write_text(GOOD + "\n# edited\n")
    line = problem(strategy.reference, digest=strategy.digest)
    assert line == f"--strategy {path}: the file changed since the backtest began: run it again"


def test_a_module_is_imported_by_its_dotted_name(tmp_path, monkeypatch):
    package = tmp_path / "research_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(package, "trend.py", GOOD + "\n\nclass Other(Breakout):\n    name = 'other'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    strategy = strategy_get("research_pkg.trend:Other")
    assert strategy.name == "other" and strategy.reference == "research_pkg.trend:Other"
    line = problem("research_pkg.trend")
    assert line == (
        "--strategy research_pkg.trend: defines 2 strategies (Breakout, Other): name one as "
        "research_pkg.trend:Breakout"
    )
    sys.modules.pop("research_pkg.trend", None)
    sys.modules.pop("research_pkg", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("import numpy as np\nx = (\n", "syntax error at line 2: "),
        ("import talib_not_installed\n", "loading it raised ModuleNotFoundError: No module named"),
        ("x = 1\ny = x / 0\n", "loading it raised ZeroDivisionError: division by zero (line 2)"),
        ("x = 1\n", "defines no strategy: a class deriving from"),
        (
            GOOD + "\n\nclass Second(Breakout):\n    pass\n",
            "defines 2 strategies (Breakout, Second): name one as ",
        ),
        (
            "from backtests.domain.strategies import Strategy\n\n"
            "class Lazy(Strategy):\n    def warmup(self, params):\n        return 0\n",
            "Lazy has no signals(self, bars, params, cache) method",
        ),
        (
            "from backtests.domain.strategies import Strategy\n\n"
            "class Lazy(Strategy):\n    def signals(self, bars, params, cache):\n        return 0\n",
            "Lazy has no warmup(self, params) method",
        ),
        (
            "from backtests.domain.strategies import Parameter, Strategy\n\n"
            "class Loose(Strategy):\n    parameters = (Parameter('w', '20'),)\n",
            "loading it raised TypeError: parameter 'w': its default must be an int or a float, "
            "not '20' (line 4)",
        ),
        (
            GOOD.replace('(Parameter("window", 5, minimum=1),)', '{"window": 5}'),
            "Breakout.parameters must be a tuple of Parameter(name, default, ...)",
        ),
        (
            GOOD.replace(
                '(Parameter("window", 5, minimum=1),)',
                '(Parameter("w", 5), Parameter("w", 6))',
            ),
            "Breakout declares the parameter 'w' twice",
        ),
    ],
    ids=[
        "syntax",
        "import",
        "raises",
        "none",
        "several",
        "no-signals",
        "no-warmup",
        "bad-parameter",
        "parameters-not-declared",
        "parameter-twice",
    ],
)
def test_a_broken_file_is_one_line_naming_it(tmp_path, text, expected):
    path = write(tmp_path, "mine.py", text)
    line = problem(str(path))
    assert line.startswith(f"--strategy {path}: ") and expected in line, line


def test_missing_files_folders_and_names(tmp_path):
    assert problem(str(tmp_path / "nope.py")) == f"--strategy {tmp_path / 'nope.py'}: no such file"
    folder = tmp_path / "folder.py"
    folder.mkdir()
    assert problem(str(folder)).endswith("is a folder: name a .py file")
    path = write(tmp_path, "mine.py", GOOD)
    assert problem(f"{path}:Fast") == (
        f"--strategy {path}: has no strategy Fast (it defines Breakout)"
    )
    assert problem(f"{path}:").endswith("name a strategy after ':' (mine.py:MyStrategy)")
    assert problem("no_such_package.strategies:Fast") == (
        "--strategy no_such_package.strategies: no module named 'no_such_package' (is it "
        "installed, or on PYTHONPATH?)"
    )


def test_the_example_in_the_docs_loads():
    strategy = strategy_get(str(ROOT / "docs/examples/rsi_reversion.py"))
    assert strategy.name == "rsi-reversion"
    assert strategy.defaults == {"period": 14, "lower": 30.0, "upper": 70.0}


def test_the_contract_shown_in_the_docs_loads_and_runs(tmp_path):
    text = (ROOT / "docs/backtests.md").read_text()
    block = text.split("## Strategies: the contract", 1)[1].split("```python\n", 1)[1]
    path = write(tmp_path, "breakout.py", block.split("```", 1)[0])
    strategy = strategy_get(str(path))
    assert strategy.name == "breakout" and strategy.defaults == {"window": 20, "margin": 0.0}
    params = strategy.params_resolve({"window": "3", "margin": "1"})
    close = np.array([10.0, 11.0, 12.0, 12.5, 11.0, 13.0])
    bars = batch_of(np.arange(6) * 86_400, close, close)
    assert strategy.events(bars, params, {}).tolist() == [-1, -1, -1, 1, -1, 1]
    assert strategy.warmup_bars(params) == 3
    with pytest.raises(InvalidRequest) as raised:
        strategy.params_resolve({"margin": 60})
    assert raised.value.phrase(flags) == "--margin 60.0 is too far"
