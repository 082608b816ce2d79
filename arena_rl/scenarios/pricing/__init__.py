"""The pricing scenario: a subscription business's offer (price, annual discount, free trial,
intro discount) tuned per variant on synthetic prospects and subscribers (the second scenario
plugin; docs/scenarios/pricing.md)."""

from arena_rl.scenarios.pricing.specs import PricingPopulation, PricingScenario

SCENARIO = PricingScenario
"""The plugin's scenario class (plugin discovery looks for ``SCENARIO``)."""

__all__ = ["SCENARIO", "PricingPopulation", "PricingScenario"]
