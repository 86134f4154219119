"""What a world model predicts against replayed episodes, as videos, images and scalars.

Each model family has its own report (openloop.py: RSSM images; unroll.py: MuZero rewards and values;
kstep.py: state ensembles); an agent's ``report()`` calls its model's. run/ writes what they return.
"""
