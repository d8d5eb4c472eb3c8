"""Evaluation: image metrics, FID/KID, the digit judge, the evaluation loop, each model's protocol, and translate-test's reports."""
