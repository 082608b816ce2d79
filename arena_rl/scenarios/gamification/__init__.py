"""The gamification scenario: a field app's XP economy (the first scenario plugin)."""

from arena_rl.scenarios.gamification.specs import GamificationScenario

SCENARIO = GamificationScenario
"""The plugin's scenario class (plugin discovery looks for ``SCENARIO``)."""

__all__ = ["SCENARIO", "GamificationScenario"]
