"""Server-side validation of the two forms: a new expense claim and a customer's address.

Each validator takes the submitted fields and returns ``(clean values, errors)``, where
``errors`` maps a field name to the message shown next to that field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation

from cristal.sample.webapps.store import CATEGORIES, COUNTRIES, CURRENCIES

# Highest amount of one claim, per currency (10,000 in EUR and USD; the yen equivalent in JPY).
MAX_AMOUNT: dict[str, Decimal] = {"EUR": Decimal(10_000), "USD": Decimal(10_000), "JPY": Decimal(1_500_000)}
DESCRIPTION_MAX = 500

POSTAL_CODES: dict[str, tuple[re.Pattern[str], str]] = {
    "DE": (re.compile(r"[0-9]{5}"), "A German postal code has 5 digits, for example 40545."),
    "JP": (re.compile(r"[0-9]{3}-[0-9]{4}"), "A Japanese postal code looks like 123-4567."),
    "US": (re.compile(r"[0-9]{5}"), "A US ZIP code has 5 digits, for example 98033."),
}


def validate_claim(form: Mapping[str, str], today: date) -> tuple[dict[str, object], dict[str, str]]:
    """Check a new claim: date (ISO, not in the future), category, amount (> 0, ≤ max), currency, description."""
    errors: dict[str, str] = {}
    clean: dict[str, object] = {}

    raw_date = form.get("date", "").strip()
    if not raw_date:
        errors["date"] = "Enter the date of the expense."
    else:
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw_date):
                raise ValueError(raw_date)
            day = date.fromisoformat(raw_date)
        except ValueError:
            errors["date"] = "Enter the date as YYYY-MM-DD, for example 2025-10-02."
        else:
            if day > today:
                errors["date"] = "The date cannot be in the future."
            clean["date"] = day.isoformat()

    category = form.get("category", "")
    if category not in CATEGORIES:
        errors["category"] = "Choose a category."
    clean["category"] = category

    currency = form.get("currency", "")
    if currency not in CURRENCIES:
        errors["currency"] = "Choose a currency."
    clean["currency"] = currency

    raw_amount = form.get("amount", "").strip().replace(" ", "")
    if not raw_amount:
        errors["amount"] = "Enter an amount."
    elif not re.fullmatch(r"-?[0-9]+(\.[0-9]{1,2})?", raw_amount):
        errors["amount"] = "Enter the amount as a number with at most 2 decimals, for example 42.50."
    else:
        try:
            amount = Decimal(raw_amount)
        except InvalidOperation:  # pragma: no cover - the pattern above admits only valid numbers
            amount = Decimal(0)
        limit = MAX_AMOUNT.get(currency, MAX_AMOUNT["EUR"])
        if amount <= 0:
            errors["amount"] = "The amount must be greater than 0."
        elif amount > limit:
            errors["amount"] = f"The amount cannot be more than {limit:,} {currency or 'EUR'}."
        elif currency == "JPY" and amount != amount.to_integral_value():
            errors["amount"] = "Yen amounts have no decimals."
        clean["amount"] = amount

    description = form.get("description", "").strip()
    if not description:
        errors["description"] = "Enter a description."
    elif len(description) > DESCRIPTION_MAX:
        errors["description"] = f"The description can be at most {DESCRIPTION_MAX} characters."
    clean["description"] = description
    return clean, errors


def validate_address(form: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Check an address: street and city required, country known, postal code in that country's format."""
    errors: dict[str, str] = {}
    clean = {k: form.get(k, "").strip() for k in ("street", "postal_code", "city", "country")}
    if not clean["street"]:
        errors["street"] = "Enter the street and number."
    elif len(clean["street"]) > 200:
        errors["street"] = "The street can be at most 200 characters."
    if not clean["city"]:
        errors["city"] = "Enter the city."
    elif len(clean["city"]) > 100:
        errors["city"] = "The city can be at most 100 characters."
    if clean["country"] not in COUNTRIES:
        errors["country"] = "Choose a country."
    elif not clean["postal_code"]:
        errors["postal_code"] = "Enter the postal code."
    else:
        pattern, message = POSTAL_CODES[clean["country"]]
        if not pattern.fullmatch(clean["postal_code"]):
            errors["postal_code"] = message
    return clean, errors
