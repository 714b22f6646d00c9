"""Internal web apps of the sample company, for the Operator and its training environments.

Two small server-rendered apps on one loopback server, over one SQLite database seeded from
the sample ERP (``cristal/sample/erp/erp.sql``):

* **Expenses** (``/expenses/``): an employee's expense claims; create a draft, submit it for
  approval (irreversible, behind a confirmation dialog), delete a draft.
* **Customers** (``/customers/``): the organization's customers; search, and edit an address.

Sign-in is by e-mail address (no password); everything is scoped to the employee's
organization. Usage::

    with serve_webapps(tmp_path / "apps.db") as apps:
        ...  # browse apps.expenses_url, apps.customers_url
        state = AppState(apps.db_path)
        state.claims("aozora-de", "jonas.becker@aozora-de.example")

Task definitions for training environments are in :mod:`cristal.sample.webapps.tasks`.
"""

from cristal.sample.webapps.server import Apps, WebApps, serve_webapps
from cristal.sample.webapps.store import AppState, Changes, Claim, Customer, Event, seed_database

__all__ = ["AppState", "Apps", "Changes", "Claim", "Customer", "Event", "WebApps", "seed_database", "serve_webapps"]
