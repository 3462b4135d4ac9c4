"""`manage.py backtest` end to end: the simulator over a socket, PostgreSQL, the catalog."""

from __future__ import annotations

import csv
import json
import logging

import pytest

from backtests.models import BacktestRun, RunKind
from backtests.services.exports import TRADE_COLUMNS
from fetcher.models import FetchRun, GatewayKind
from tests.support import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

GUIDE = ("--strategy", "sma", "--symbols", "AAPL", "--start", "2024-01-01", "--end", "2024-12-31")
AAPL_MSFT = ("--symbols", "AAPL,MSFT", "--start", "2024-01-01", "--end", "2024-12-31")
# Stored, but too few bars for the slow SMA (21 of 31).
JANUARY = (
    "--symbols",
    "AAPL",
    "--start",
    "2024-01-01",
    "--end",
    "2024-01-31",
    "--data-source",
    "db",
)


def test_the_guide_example_fetches_then_backtests(gateway, backtest):
    code, out, err = backtest(*GUIDE, "--data-source", "ibkr")
    assert code == 0, err
    assert "Fetching the missing DAILY bars of AAPL first" in out
    assert "Backtest Results" in out and "Sharpe Ratio" in out and "Trades of AAPL" in out
    assert "Annualised figures" not in out  # a year of bars
    run = BacktestRun.objects.get()
    assert run.kind == RunKind.SINGLE and run.symbol == "AAPL" and run.bars == 252
    assert run.source == GatewayKind.SIMULATOR and run.data_source == "ibkr"
    assert run.fetch_run is not None and run.params == {"fast": 10, "slow": 30}
    assert run.metrics["# Trades"] == len(run.trades) > 0
    assert run.equity[0][1] == 100_000 and len(run.equity) == 252
    # Everything is stored now: a second backtest fetches nothing and asks the gateway nothing.
    requests = gateway.stats.counts["historical_requests"]
    code, out, err = backtest(*GUIDE)
    assert code == 0, err
    assert "Fetching" not in out and FetchRun.objects.count() == 1
    assert gateway.stats.counts["historical_requests"] == requests
    again = BacktestRun.objects.order_by("-pk").first()
    assert again.metrics == run.metrics and again.fetch_run is None


def test_json_is_one_object_with_backtestings_names(gateway, backtest):
    code, out, err = backtest(
        *GUIDE, "--json", "--commission", "ibkr", "--fast", "5", "--slow", "20"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["params"] == {"fast": 5, "slow": 20} and data["symbol"] == "AAPL"
    for key in ("Return [%]", "# Trades", "Sharpe Ratio", "Max. Drawdown Duration", "SQN"):
        assert key in data
    assert data["Commissions [$]"] > 0 and data["source"] == "simulator"
    assert data["run_id"] == BacktestRun.objects.get().pk
    assert "Fetching" in err  # notes go to stderr, so stdout stays one JSON object


def test_database_and_catalog_give_the_same_backtest(gateway, backtest):
    assert backtest(*GUIDE)[0] == 0
    results = []
    for source in ("db", "catalog"):
        code, out, err = backtest(*GUIDE, "--data-source", source, "--json")
        assert code == 0, err
        results.append(
            {k: v for k, v in json.loads(out).items() if k not in ("run_id", "data_source")}
        )
    assert results[0] == results[1]


def test_several_symbols_and_an_equal_weight_portfolio(gateway, backtest, tmp_path):
    picture = tmp_path / "pictures" / "equity.png"
    code, out, err = backtest(
        "--symbols",
        "AAPL,MSFT,GOOGL",
        "--start",
        "2023-01-01",
        "--end",
        "2024-12-31",
        "--plot",
        str(picture),
    )
    assert code == 0, err
    assert "Portfolio" in out and "Trades of MSFT" in out and "Trades of GOOGL" in out
    runs = BacktestRun.objects.order_by("pk")
    assert [r.kind for r in runs] == [RunKind.SINGLE] * 3 + [RunKind.PORTFOLIO]
    portfolio = runs[3]
    assert portfolio.symbol == "AAPL,MSFT,GOOGL" and len({r.group for r in runs}) == 1
    singles = runs[:3]
    assert portfolio.metrics["# Trades"] == sum(r.metrics["# Trades"] for r in singles)
    assert portfolio.equity[0][1] == pytest.approx(100_000)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class LogLines(logging.Handler):
    """The messages of one logger, on the logger itself: the in-process tasks' Django set-up
    reconfigures the root logger (and drops pytest's caplog handler)."""

    def __init__(self, name: str):
        super().__init__(logging.INFO)
        self.logger, self.lines = logging.getLogger(name), []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> list[str]:
        self.level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self.lines

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)


def test_a_sweep_runs_in_process_reads_the_bars_once_and_draws_a_heatmap(
    gateway, backtest, tmp_path
):
    assert backtest(*GUIDE)[0] == 0
    heatmap = tmp_path / "sweep.png"
    with LogLines("ibdata.backtests") as lines:
        code, out, err = backtest(
            *GUIDE,
            "--fast",
            "5:20:5",
            "--slow",
            "20:60:20",
            "--maximize",
            "sharpe ratio",
            "--heatmap",
            str(heatmap),
            "--data-source",
            "db",
        )
    assert code == 0, err
    assert "Sweep of 11 points on AAPL" in out and "1 points skipped" in out
    assert "Best 5 of 11 by Sharpe Ratio" in out
    assert BacktestRun.objects.filter(kind=RunKind.SWEEP).count() == 11
    reads = [line for line in lines if line.startswith("bars read:")]
    assert len(reads) == 1, reads  # the command's read, shared by every chunk
    assert reads[0].startswith("bars read: AAPL DAILY 2024-01-01..2024-12-31 from db")
    assert heatmap.read_bytes()[:4] == b"\x89PNG"
    best = json.loads(
        backtest(*GUIDE, "--fast", "5:20:5", "--slow", "20:60:20", "--json", "--data-source", "db")[
            1
        ]
    )["best"]
    sharpes = [b["Sharpe Ratio"] for b in best]
    assert sharpes == sorted(sharpes, reverse=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--symbols", "AAPL", "--start", "2024-02-01", "--end", "2024-01-01"), "empty range"),
        (
            (
                "--symbols",
                "AAPL",
                "--start",
                "2024-01-06",
                "--end",
                "2024-01-07",
                "--data-source",
                "db",
            ),
            "no DAILY bars of AAPL from 2024-01-06 to 2024-01-07",
        ),
        (
            ("--symbols", "MSFT", "--start", "2024-01-01", "--data-source", "db"),
            "no bars of MSFT are stored (never fetched)",
        ),
        (
            ("--symbols", "MSFT", "--start", "2024-01-01", "--data-source", "catalog"),
            "no bars of MSFT are stored (never fetched)",
        ),
        (
            (
                "--symbols",
                "AAPL",
                "--start",
                "2024-01-01",
                "--timeframe",
                "1-HOUR",
                "--data-source",
                "db",
            ),
            "AAPL has no 1-HOUR TRADES bars stored (stored: DAILY)",
        ),
        (
            ("--symbols", "AAPL", "--start", "2024-01-01", "--fast", "30", "--slow", "10"),
            "--fast 30 must be smaller than --slow 10",
        ),
        (JANUARY, "21 DAILY bars from 2024-01-01 to 2024-01-31, but sma"),
        (("--symbols", "AAPL", "--start", "2024-01-01", "--strategy", "rsi"), "unknown strategy"),
        (("--symbols", "AAPL", "--start", "2024-01-01", "--commission", "x"), "neither a fraction"),
        (("--symbols", "AAPL", "--start", "2024-01-01", "--data-source", "csv"), "--data-source"),
        (("--symbols", "AAPL", "--start", "2024-01-01", "--fast", "5:x"), "not a whole number"),
        (("--symbols", "AAPL", "--start", "2024-01-01", "--cash", "-5"), "positive amount"),
        (
            ("--symbols", "AAPL,MSFT", "--start", "2024-01-01", "--fast", "5:10:5"),
            "a sweep takes one symbol",
        ),
        (
            (
                "--symbols",
                "AAPL",
                "--start",
                "2024-01-01",
                "--fast",
                "5:10:5",
                "--maximize",
                "Happiness",
            ),
            "is not a metric",
        ),
        (("--symbols", "AA$PL", "--start", "2024-01-01"), "malformed instrument"),
        (("--symbols", "AAPL", "--start", "2024-01-01", "--top", "x"), "--top 'x' is not a whole"),
        (("--symbols", "AAPL", "--start", "2024-01-01", "--chunk", "0"), "must be at least 1"),
        (("--start", "2024-01-01"), "no symbols given"),
        (("--symbols", "AAPL"), "no --start given"),
        (
            ("--symbols", "AAPL", "--start", "2024-01-01", "--fast", "1:20000000"),
            "--fast '1:20000000' has 20,000,000 values: a sweep has at most 100,000",
        ),
        (
            ("--symbols", "AAPL", "--start", "2024-01-01", "--fast", "1:1000", "--slow", "1:1000"),
            "the sweep has 1,000,000 points (--fast × --slow): at most 100,000",
        ),
        (
            ("--symbols", "AAPL", "--start", "2024-01-01", "--plot", "equity.jpg"),
            "--plot 'equity.jpg' must name a .png file",
        ),
        (
            (*JANUARY, "--fast", "5:10:5"),
            "21 DAILY bars from 2024-01-01 to 2024-01-31, but sma",  # a sweep: before any point
        ),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(gateway, backtest, args, message):
    assert backtest(*GUIDE)[0] == 0  # AAPL DAILY 2024 is stored
    runs = BacktestRun.objects.count()
    code, out, err = backtest(*args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert BacktestRun.objects.count() == runs


def test_a_symbol_with_too_few_bars_stores_no_run_of_the_others(gateway, backtest):
    # META was listed on 2012-05-18: 20 bars in the range, AAPL has 53.
    code, out, err = backtest(
        "--symbols", "AAPL,META", "--start", "2012-04-01", "--end", "2012-06-15"
    )
    assert code == 2
    assert "META: 20 DAILY bars from 2012-04-01 to 2012-06-15, but sma" in err
    assert len(err.strip().splitlines()) == 1 and BacktestRun.objects.count() == 0


def test_an_unknown_symbol_fails_its_fetch_in_one_line(gateway, backtest):
    code, out, err = backtest("--symbols", "XYZQ", "--start", "2024-01-01", "--end", "2024-03-01")
    assert code == 1
    assert "fetching the missing bars failed" in err and "XYZQ" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert BacktestRun.objects.count() == 0


def test_a_picture_that_cannot_be_written_fails_before_anything_is_fetched(
    gateway, backtest, tmp_path
):
    assert backtest(*GUIDE)[0] == 0
    requests = gateway.stats.counts["historical_requests"]
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    (tmp_path / "pictures.png").mkdir()
    for option, path, message in (
        ("--plot", tmp_path / "notes.txt" / "equity.png", "notes.txt is not a folder"),
        ("--plot", tmp_path / "pictures.png", "is a folder: name a .png file"),
    ):
        # MSFT is not stored: a backtest would fetch it first.
        code, out, err = backtest(*AAPL_MSFT, option, str(path))
        assert code == 2 and f"{option} '{path}'" in err and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Fetching" not in out
    assert gateway.stats.counts["historical_requests"] == requests
    assert FetchRun.objects.count() == 1 and BacktestRun.objects.count() == 1


# --- strategies of one's own, parameters, CSVs ---------------------------------------------

EXAMPLE = str(ROOT / "docs/examples/rsi_reversion.py")


def test_json_holds_every_closed_trade(gateway, backtest):
    code, out, err = backtest(*GUIDE, "--json", "--fast", "5", "--slow", "20")
    assert code == 0, err
    data = json.loads(out)
    run = BacktestRun.objects.get()
    assert data["trades"] == run.trades and len(data["trades"]) == data["# Trades"] > 0
    assert list(data["trades"][0]) == list(TRADE_COLUMNS[1:])  # backtesting.py's names


def test_the_second_builtin_strategy_takes_its_parameters(gateway, backtest):
    code, out, err = backtest(*GUIDE[2:], "--strategy", "donchian", "--param", "entry=15", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["strategy"] == "donchian" and data["params"] == {"entry": 15, "exit": 10}
    assert "strategy_source" not in data
    run = BacktestRun.objects.get()
    assert run.strategy == "donchian" and run.strategy_source == ""


def test_a_users_strategy_file_runs_and_sweeps_in_process(gateway, backtest, tmp_path):
    code, out, err = backtest(
        *GUIDE[2:],
        "--strategy",
        EXAMPLE,
        "--param",
        "period=10",
        "--param",
        "lower=35",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["strategy"] == "rsi-reversion" and data["strategy_source"] == EXAMPLE
    assert data["params"] == {"period": 10, "lower": 35.0, "upper": 70.0}
    run = BacktestRun.objects.get()
    assert (run.strategy, run.strategy_source) == ("rsi-reversion", EXAMPLE)
    code, out, err = backtest(
        *GUIDE[2:],
        "--strategy",
        EXAMPLE,
        "--param",
        "period=7:21:7",
        "--param",
        "lower=20,30",
        "--param",
        "upper=30,70",
        "--data-source",
        "db",
    )
    assert code == 0, err
    # 3 periods x 2 lower x 2 upper, less the 3 points with lower 30 >= upper 30
    assert "Sweep of 9 points on AAPL" in out and "3 points skipped" in out
    points = BacktestRun.objects.filter(kind=RunKind.SWEEP)
    assert points.count() == 9 and {p.strategy_source for p in points} == {EXAMPLE}
    assert {p.params["period"] for p in points} == {7, 14, 21}


def test_trades_and_equity_csv(gateway, backtest, tmp_path):
    trades, equity = tmp_path / "out" / "trades.csv", tmp_path / "equity.csv"
    code, out, err = backtest(*AAPL_MSFT, "--trades-csv", str(trades), "--equity-csv", str(equity))
    assert code == 0, err
    assert "Trades:" in out and "Equity curves:" in out
    runs = {r.symbol: r for r in BacktestRun.objects.filter(kind=RunKind.SINGLE)}
    with open(trades, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(TRADE_COLUMNS)
    assert set(TRADE_COLUMNS) == {"Symbol", *runs["AAPL"].trades[0]}
    for symbol, run in runs.items():
        mine = [r for r in rows if r["Symbol"] == symbol]
        assert len(mine) == len(run.trades) > 0
        for row, trade in zip(mine, run.trades, strict=True):
            assert float(row["PnL"]) == trade["PnL"] and int(row["Size"]) == trade["Size"]
            assert row["EntryTime"] == trade["EntryTime"]
    with open(equity, newline="") as handle:
        curve = list(csv.DictReader(handle))
    assert list(curve[0]) == ["Symbol", "Time", "Equity"]
    assert [r for r in curve if r["Symbol"] == "AAPL"][0] == {
        "Symbol": "AAPL",
        "Time": "2024-01-02 00:00:00",
        "Equity": "100000.0",
    }
    portfolio = BacktestRun.objects.get(kind=RunKind.PORTFOLIO)
    last = [r for r in curve if r["Symbol"] == "Portfolio"][-1]
    assert float(last["Equity"]) == portfolio.equity[-1][1]
    assert sum(r["Symbol"] == "MSFT" for r in curve) == runs["MSFT"].bars


def test_an_export_that_cannot_be_written_fails_before_anything_is_fetched(
    gateway, backtest, tmp_path
):
    (tmp_path / "folder.csv").mkdir()
    code, out, err = backtest(
        "--symbols", "MSFT", "--start", "2024-01-01", "--trades-csv", str(tmp_path / "folder.csv")
    )
    assert code == 2 and "is a folder: name a file" in err and "--trades-csv" in err
    assert FetchRun.objects.count() == 0 and BacktestRun.objects.count() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--param", "fast"), "--param 'fast': use --param name=value"),
        (("--param", "windw=5"), "sma has no parameter --param windw (its parameters: fast, slow)"),
        (("--fast", "5", "--param", "fast=6"), "--param fast is given twice"),
        (("--param", "fast=1.5"), "--param fast '1.5' is not a whole number"),
        (("--param", "fast=40"), "--param fast 40 must be smaller than --slow 30"),
        (("--strategy", "donchian", "--param", "entry=0"), "--param entry 0 must be at least 1"),
        (("--strategy", "donchian", "--fast", "5"), "donchian has no parameter --fast"),
        (
            ("--strategy", EXAMPLE, "--param", "lower=x"),
            "--param lower 'x' is not a number, a list (0.5,1) or a range (0.5:2:0.5)",
        ),
        (
            ("--strategy", EXAMPLE, "--param", "upper=101"),
            "--param upper 101.0 must be at most 100",
        ),
        (("--strategy", "strategies/nope.py"), "--strategy strategies/nope.py: no such file"),
        (("--strategy", "no_such_pkg.mod:Fast"), "no module named 'no_such_pkg'"),
        (
            ("--fast", "5:10:5", "--trades-csv", "t.csv"),
            "--trades-csv: a sweep keeps no trades or equity curves: backtest one point",
        ),
        (
            ("--trades-csv", "same.csv", "--equity-csv", "./same.csv"),
            "--equity-csv is the file of --trades-csv",
        ),
    ],
)
def test_bad_strategies_and_parameters_are_one_line(gateway, backtest, args, message):
    code, out, err = backtest("--symbols", "AAPL", "--start", "2024-01-01", *args)
    assert code == 2, err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert BacktestRun.objects.count() == 0 and FetchRun.objects.count() == 0


def test_a_strategy_that_fails_on_the_bars_is_one_line_and_stores_nothing(
    gateway, backtest, tmp_path
):
    assert backtest(*GUIDE)[0] == 0
    mine = tmp_path / "mine.py"
    mine.write_text(
        "from backtests.domain.strategies import Parameter, Strategy\n\n\n"
        "class Fragile(Strategy):\n"
        "    parameters = (Parameter('window', 5),)\n\n"
        "    def warmup(self, params):\n"
        "        return params['window']\n\n"
        "    def signals(self, bars, params, cache):\n"
        "        return {'a': 1}[params['window']]\n"
    )
    runs = BacktestRun.objects.count()
    for sweep in ((), ("--param", "window=5:7")):
        code, out, err = backtest(*GUIDE[2:], "--strategy", str(mine), *sweep)
        assert code == 2, err
        assert f"--strategy {mine}: Fragile.signals raised KeyError: " in err
        assert "(line 11)" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert BacktestRun.objects.count() == runs


def test_annualised_figures_of_two_weeks_of_minutes_carry_a_note(gateway, backtest):
    code, out, err = backtest(
        "--symbols", "AAPL", "--start", "2024-03-04", "--end", "2024-03-15",
        "--timeframe", "1-MINUTE", "--data-source", "ibkr",
    )  # fmt: skip
    assert code == 0, err
    assert "Annualised figures (Return (Ann.), Volatility (Ann.), CAGR, Sharpe Ratio" in out
    assert "extrapolate 11 days of bars to a year" in out
