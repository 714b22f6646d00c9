"""Managing the installation: ``cristal org ...``, ``user ...``, ``group ...``, ``apikey ...``.

Without ``--as`` these act as the installation principal (whoever can run the
CLI on the server); with ``--as EMAIL`` they act as that employee, who must be
an admin of the organization for admin changes.
"""

from __future__ import annotations

import typer

from cristal.cli.runtime import JSON, acting, note, print_json, settings, show_table, show_text, unit_of_work
from cristal.errors import InvalidInput

app = typer.Typer()
org_app = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
user_app = typer.Typer(help="Employees of an organization.", no_args_is_help=True)
group_app = typer.Typer(help="Groups and their members.", no_args_is_help=True)
key_app = typer.Typer(help="API keys (stored hashed, shown once).", no_args_is_help=True)
app.add_typer(org_app, name="org")
app.add_typer(user_app, name="user")
app.add_typer(group_app, name="group")
app.add_typer(key_app, name="apikey")

AS = typer.Option(None, "--as", help="Act as this employee instead of the installation principal.")
ORG = typer.Option(..., "--org", help="Organization slug.")


@org_app.command("create")
def org_create(slug: str, name: str | None = typer.Option(None, "--name"), json_out: bool = JSON) -> None:
    """Create an organization."""
    from cristal.identity import orgs

    with unit_of_work() as s:
        info = orgs.create_org(s, acting(s, None, None), slug, name)
    if json_out:
        print_json(info.as_dict())
    else:
        note("created organization [bold]{}[/] ({})", info.slug, info.name)


@org_app.command("list")
def org_list(org: str | None = typer.Option(None, "--org"), as_email: str | None = AS, json_out: bool = JSON) -> None:
    """List organizations (a user sees only their own)."""
    from cristal.identity import orgs

    with unit_of_work() as s:
        items = orgs.list_orgs(s, acting(s, org, as_email))
    if json_out:
        print_json({"orgs": [i.as_dict() for i in items]})
    else:
        show_table("Organizations", ["slug", "name", "users", "model"], [[i.slug, i.name, i.users, i.llm_model or "-"] for i in items])


@org_app.command("remove")
def org_remove(slug: str, yes: bool = typer.Option(False, "--yes", help="Confirm deletion of all its users and data.")) -> None:
    """Delete an organization and everything in it."""
    from cristal.identity import orgs
    from cristal.knowledge.index import delete_unused_embeddings

    if not yes:
        raise InvalidInput(f"deleting {slug!r} removes all its users and data: add --yes to confirm")
    with unit_of_work() as s:
        orgs.delete_org(s, acting(s, None, None), slug)
        # The rows go with the organization; the embedding cache is shared by content, so it is pruned here.
        delete_unused_embeddings(s)
    note("removed organization [bold]{}[/] and all its data", slug)


@org_app.command("llm")
def org_llm(
    slug: str,
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1"),
    model: str | None = typer.Option(None, "--model"),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="Name of the environment variable holding the key (must start with CRISTAL_ORG_KEY_)."),
    budget: float | None = typer.Option(None, "--budget", help="Monthly budget in US dollars."),
    no_budget: bool = typer.Option(False, "--no-budget", help="Remove the monthly budget."),
    as_email: str | None = AS,
    json_out: bool = JSON,
) -> None:
    """Set an organization's model endpoint, model and monthly budget."""
    from cristal.identity import orgs

    with unit_of_work() as s:
        info = orgs.configure_llm(
            s, acting(s, slug, as_email), slug,
            base_url=base_url, model=model, api_key_env=api_key_env, monthly_budget_usd=budget, clear_budget=no_budget,
        )
    if json_out:
        print_json(info.as_dict())
    else:
        budget_text = "none" if info.llm_monthly_budget_usd is None else f"${info.llm_monthly_budget_usd:,.2f}/month"
        note("{}: endpoint {}, model {}, budget {}", info.slug, info.llm_base_url or "(default)", info.llm_model or "(default)",
             budget_text)


@org_app.command("embeddings")
def org_embeddings(
    slug: str,
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="OpenAI-compatible base URL serving /embeddings (default: the organization's LLM endpoint)."),
    model: str | None = typer.Option(None, "--model", help="The embedding model's name at that endpoint."),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="Name of the environment variable holding the endpoint's key (must start with CRISTAL_ORG_KEY_)."),
    bundled: bool = typer.Option(False, "--bundled", help="Go back to the bundled offline model."),
    show_only: bool = typer.Option(False, "--show", help="Print the index searches use and the one being built."),
    as_email: str | None = AS,
    json_out: bool = JSON,
) -> None:
    """Choose the organization's embedding model; `cristal sync` then builds its new index while searches keep the old one."""
    from cristal.identity.directory import org_by_slug
    from cristal.identity.orgs import check_key_env
    from cristal.knowledge import indexes
    from cristal.models.endpoint import resolve_endpoint

    if show_only + bundled + (model is not None) != 1:
        raise InvalidInput("give one of --model NAME (with --endpoint URL), --bundled or --show")
    if bundled and (endpoint or api_key_env):
        raise InvalidInput("--bundled takes no --endpoint or --api-key-env")
    cfg = settings()
    with unit_of_work() as s:
        actor = acting(s, slug, as_email)
        if show_only:
            info = indexes.describe(s, actor, slug)
        else:
            if model is not None and endpoint is None:
                endpoint = resolve_endpoint(cfg, org_by_slug(s, slug)).base_url
                if endpoint is None:
                    raise InvalidInput("no endpoint: give --endpoint URL (no LLM endpoint is configured to fall back on)")
            chosen = indexes.choose_model(s, actor, slug, model=model, base_url=endpoint,
                                          api_key_env=check_key_env(api_key_env) if api_key_env else None)
            info = indexes.describe(s, actor, slug) | {"chosen": chosen.as_dict()}
    if json_out:
        print_json(info)
        return
    serving, building = info["serving"], info["building"]
    note("{}: searches use {} ({})", slug, serving["model"], serving["base_url"] or "bundled")
    if building:
        note("building {} ({}){}: run `cristal sync --org {}` to embed every chunk for it", building["model"],
             building["base_url"] or "bundled", f" - last attempt: {building['reason']}" if building["reason"] else "", slug)


@org_app.command("oidc")
def org_oidc(
    slug: str,
    issuer: str | None = typer.Option(None, "--issuer", help="The provider's issuer URL (its discovery document is "
                                      "ISSUER/.well-known/openid-configuration)."),
    client_id: str | None = typer.Option(None, "--client-id", help="The client id Cristal is registered under there."),
    secret_env: str | None = typer.Option(
        None, "--secret-env", help="Name of the environment variable holding the client secret (must start with "
                                   "CRISTAL_ORG_KEY_); omit for a public client."),
    groups_claim: str | None = typer.Option(None, "--groups-claim", help="The id token claim listing the person's groups."),
    show: bool = typer.Option(False, "--show", help="Print the organization's provider instead of setting it."),
    remove: bool = typer.Option(False, "--remove", help="Remove the provider (its sessions end now)."),
    as_email: str | None = AS,
    json_out: bool = JSON,
) -> None:
    """Set the OpenID Connect provider people of an organization sign in to the web app with."""
    from cristal.identity import oidc

    setting = issuer is not None or client_id is not None or secret_env is not None or groups_claim is not None
    if show + remove + setting != 1:
        raise InvalidInput("give --issuer and --client-id (with --secret-env, --groups-claim), or --show, or --remove")
    if remove:
        with unit_of_work() as s:
            oidc.remove_oidc(s, acting(s, slug, as_email), slug)
        note("{}: sign-in provider removed; its sessions have ended", slug)
        return
    with unit_of_work() as s:
        actor = acting(s, slug, as_email)
        if show:
            info = oidc.show_oidc(s, actor, slug)
        else:
            if not issuer or not client_id:
                raise InvalidInput("setting a provider needs both --issuer and --client-id")
            info = oidc.configure_oidc(s, actor, slug, issuer=issuer, client_id=client_id, secret_env=secret_env,
                                       groups_claim=groups_claim)
    if json_out:
        print_json(info.as_dict())
    else:
        note("{}: sign-in with {} as client {} (secret from {}, groups from {})", info.org, info.issuer, info.client_id,
             info.client_secret_env or "none: a public client", info.groups_claim or "not synced")


@user_app.command("add")
def user_add(
    email: str,
    org: str = ORG,
    group: list[str] = typer.Option([], "--group", help="Group to join (repeatable; created if new)."),
    role: str = typer.Option("member", "--role", help="admin or member."),
    as_email: str | None = AS,
    json_out: bool = JSON,
) -> None:
    """Add an employee to an organization."""
    from cristal.identity import users

    with unit_of_work() as s:
        info = users.add_user(s, acting(s, org, as_email), org, email, groups=group, role=role)
    if json_out:
        print_json(info.as_dict())
    else:
        groups = ", ".join(info.groups) or "no groups"
        note("added [bold]{}[/] to {} as {} ({})", info.email, info.org, info.role, groups)


@user_app.command("list")
def user_list(org: str = ORG, as_email: str | None = AS, json_out: bool = JSON) -> None:
    """List the employees of an organization."""
    from cristal.identity import users

    with unit_of_work() as s:
        items = users.list_users(s, acting(s, org, as_email), org)
    if json_out:
        print_json({"users": [i.as_dict() for i in items]})
    else:
        show_table(f"Users of {org}", ["email", "role", "groups"], [[i.email, i.role, ", ".join(i.groups)] for i in items])


@user_app.command("remove")
def user_remove(email: str, org: str = ORG, as_email: str | None = AS) -> None:
    """Remove an employee (their API keys go with them)."""
    from cristal.identity import users

    with unit_of_work() as s:
        users.remove_user(s, acting(s, org, as_email), org, email)
    note("removed {} from {}", email, org)


@user_app.command("role")
def user_role(email: str, role: str, org: str = ORG, as_email: str | None = AS) -> None:
    """Make an employee an admin or a member."""
    from cristal.identity import users

    with unit_of_work() as s:
        info = users.set_role(s, acting(s, org, as_email), org, email, role)
    note("{} is now {} in {}", info.email, info.role, info.org)


@group_app.command("add")
def group_add(group: str, email: str, org: str = ORG, as_email: str | None = AS) -> None:
    """Put an employee in a group (created if new)."""
    from cristal.identity import users

    with unit_of_work() as s:
        info = users.join_group(s, acting(s, org, as_email), org, email, group)
    note("{} is in: {}", info.email, ", ".join(info.groups))


@group_app.command("remove")
def group_remove(group: str, email: str, org: str = ORG, as_email: str | None = AS) -> None:
    """Take an employee out of a group."""
    from cristal.identity import users

    with unit_of_work() as s:
        info = users.leave_group(s, acting(s, org, as_email), org, email, group)
    note("{} is in: {}", info.email, ", ".join(info.groups) or "no groups")


@group_app.command("list")
def group_list(org: str = ORG, as_email: str | None = AS, json_out: bool = JSON) -> None:
    """List groups and their members."""
    from cristal.identity import users

    with unit_of_work() as s:
        items = users.list_groups(s, acting(s, org, as_email), org)
    if json_out:
        print_json({"groups": [i.as_dict() for i in items]})
    else:
        show_table(f"Groups of {org}", ["group", "members"], [[i.name, ", ".join(i.members)] for i in items])


@key_app.command("create")
def key_create(
    email: str, org: str = ORG, name: str = typer.Option("default", "--name"), as_email: str | None = AS, json_out: bool = JSON
) -> None:
    """Create an API key for an employee; the key is printed once and never stored."""
    from cristal.identity import apikeys

    with unit_of_work() as s:
        info, secret = apikeys.create_api_key(s, acting(s, org, as_email), org, email, name)
    if json_out:
        print_json({**info.as_dict(), "key": secret})
    else:
        show_text(secret)
        note("API key {} for {}: store it now, it cannot be shown again", info.prefix, info.owner)


@key_app.command("list")
def key_list(email: str, org: str = ORG, as_email: str | None = AS, json_out: bool = JSON) -> None:
    """List an employee's API keys (prefixes only)."""
    from cristal.identity import apikeys

    with unit_of_work() as s:
        items = apikeys.list_api_keys(s, acting(s, org, as_email), org, email)
    if json_out:
        print_json({"keys": [i.as_dict() for i in items]})
    else:
        show_table(f"API keys of {email}", ["prefix", "name", "created", "last used", "revoked"],
                   [[i.prefix, i.name, i.created_at.strftime("%Y-%m-%d %H:%M"),
                     i.last_used_at.strftime("%Y-%m-%d %H:%M") if i.last_used_at else "-", "yes" if i.revoked else "no"]
                    for i in items])


@key_app.command("revoke")
def key_revoke(prefix: str, org: str = ORG, as_email: str | None = AS) -> None:
    """Revoke an API key by its prefix."""
    from cristal.identity import apikeys

    with unit_of_work() as s:
        apikeys.revoke_api_key(s, acting(s, org, as_email), org, prefix)
    note("revoked API key {}", prefix)
