"""The tournament config: settings that cannot run are refused before any work, naming the key."""

from __future__ import annotations

import pytest

from arena_rl.config import ConfigError, compose_config, settings_from

QUICK = ["+agents=[random]", "tournament.days=8", "population.n_users=600", "progress=false"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tournament.decision_timeout_s=-1", "tournament.decision_timeout_s must be"),
        ("tournament.decision_timeout_s=0", "tournament.decision_timeout_s must be"),
        ("tracking.uri=sqlite:////nonexistent/dir/mlflow.db", "/nonexistent/dir does not exist"),
        ("tracking.uri=sqlite:/mlflow.db", "a SQLite URI is sqlite:///"),
    ],
)
def test_bad_run_settings_are_refused_before_any_work(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from(compose_config([*QUICK, override]))


def test_more_workers_than_cores_is_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    settings_from(compose_config([*QUICK, "ray.num_workers=64", "tracking.enabled=false"]))
    assert "warning: ray.num_workers=64" in capsys.readouterr().err
