"""The bundled example: a seeded, realistic credit-default dataset (numeric, categorical, boolean,
datetime columns, some missing values), and a "later" batch with known drift for monitoring."""

from __future__ import annotations

import numpy as np
import pandas as pd

REGIONS = ["north", "south", "east", "west"]
EMPLOYMENT = ["salaried", "self_employed", "unemployed", "retired"]
HOME = ["rent", "own", "mortgage"]


def credit_data(rows: int, *, seed: int, drift: bool = False, start: str = "2025-01-01") -> pd.DataFrame:
    """``rows`` applications. With ``drift``: lower incomes, more applicants from the west, a new
    employment category, and a shifted debt ratio; age, loan amount and the rest stay as they were."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows)
    income = rng.lognormal(10.6 if not drift else 10.3, 0.45, rows).round(2)
    region_p = [0.3, 0.3, 0.25, 0.15] if not drift else [0.15, 0.2, 0.2, 0.45]
    region = rng.choice(REGIONS, rows, p=region_p)
    employment_values = EMPLOYMENT + (["contractor"] if drift else [])
    employment_p = [0.6, 0.2, 0.08, 0.12] if not drift else [0.5, 0.18, 0.08, 0.1, 0.14]
    employment = rng.choice(employment_values, rows, p=employment_p)
    home = rng.choice(HOME, rows, p=[0.4, 0.25, 0.35])
    loan_amount = rng.gamma(2.0, 6000.0, rows).round(2)
    loan_term = rng.choice([12, 24, 36, 48, 60], rows)
    credit_score = np.clip(rng.normal(680, 70, rows), 300, 850).round().astype(int)
    debt_ratio = np.clip(rng.beta(2, 5, rows) * (1.0 if not drift else 1.4), 0, 2).round(4)
    accounts = rng.poisson(4, rows)
    guarantor = rng.random(rows) < 0.2
    days = rng.integers(0, 365, rows)
    applied = pd.Timestamp(start) + pd.to_timedelta(days, unit="D")

    logit = (-1.2 - 0.012 * (credit_score - 680) + 2.8 * (debt_ratio - 0.3)
             + 0.00003 * (loan_amount - 12000) - 0.6 * (np.log(income) - 10.6)
             + np.where(employment == "unemployed", 1.3, 0.0) + np.where(guarantor, -0.7, 0.0)
             + np.where(region == "east", 0.3, 0.0) - 0.01 * (age - 45))
    default = rng.random(rows) < 1 / (1 + np.exp(-logit))

    frame = pd.DataFrame({
        "customer_id": [f"C{seed % 1000:03d}{i:07d}" for i in range(rows)],
        "age": age, "income": income, "loan_amount": loan_amount, "loan_term": loan_term,
        "credit_score": credit_score, "debt_ratio": debt_ratio, "num_accounts": accounts,
        "region": region, "employment": employment, "home_ownership": home,
        "has_guarantor": guarantor, "application_date": applied.strftime("%Y-%m-%d"),
        "default": default.astype(int),
    })
    for column, rate in (("income", 0.02), ("employment", 0.01), ("num_accounts", 0.01)):
        mask = rng.random(rows) < rate
        frame[column] = frame[column].astype(object).where(~mask, None)
    return frame
