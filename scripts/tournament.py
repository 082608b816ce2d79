"""Run seeded tournaments of agents on Ray, print a leaderboard, and log it all to MLflow.

    python scripts/tournament.py '+agents=[ucb,oracle]'
    python scripts/tournament.py '+agents=[ucb,thompson,ppo]' tournament.n_tournaments=20 \
        population=farmers population.n_users=6000 ray.num_workers=2
    python scripts/tournament.py -m '+agents=[ucb,random]' population=default,farmers
    python scripts/tournament.py '+agents=[ucb,random]' ray.address=auto   # join a cluster

The same command is ``python -m arena_rl tournament ...`` wherever arena_rl is installed; the
app itself is :mod:`arena_rl.tournament.app`.
"""

from arena_rl.tournament.app import main

if __name__ == "__main__":
    main()
