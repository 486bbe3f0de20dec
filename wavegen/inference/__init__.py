"""A trained model used: the Vocoder API, batch synthesis, likelihood scoring, and Griffin-Lim
(the no-training baseline)."""
