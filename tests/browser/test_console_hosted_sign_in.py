"""The console's hosted sign-in in real headless Chromium (web/console/js/auth.js): the authorization code grant with
PKCE and a random `state`, against a stand-in for Cognito's hosted pages on an origin of its own (its token endpoint
answers cross-origin, as Cognito's does), with the console hosted apart from the API as deployed.

The attack it closes (issue 15): a link that carries someone else's sign-in. With the implicit grant the console
read `#access_token=` from any link, so an attacker's token, mailed to an agent, signed the agent into the
attacker's desk. Now such a link, and one carrying the attacker's authorization code, signs nobody in: the console
takes an answer only with the state its own tab sent, and never reads a token from the address."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from local.gateway import running_gateway
from local.gateway.static import static_routes
from local.template import REPO
from local.token import mint_token
from tests.browser.conftest import Desk, assert_accessible, wait_until

CLIENT_ID = "console-client"
Shot = Callable[[WebDriver, str], Path]


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class HostedPages:
    """Cognito's hosted sign-in as the console meets it. /oauth2/authorize signs in whoever `signs_in` names (no
    form) and sends the browser back with a code bound to the request's PKCE challenge and redirect URI, and the
    request's state; with `hold`, it shows its sign-in page and stays there. /oauth2/token trades a code, once, for
    its user's access token when the verifier, the client and the redirect URI match (RFC 7636), else 400."""

    signs_in: Callable[[], str]  # the access token of whoever signs in at the page
    hold: bool = False
    authorized: list[dict[str, str]] = field(default_factory=list)
    exchanges: list[dict[str, str]] = field(default_factory=list)
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code: (challenge, redirect URI, token)

    async def authorize(self, request: Request) -> Response:
        asked = dict(request.query_params)
        self.authorized.append(asked)
        if self.hold:
            return HTMLResponse("<!doctype html><title>Sign in</title><main><h1>Sign in</h1></main>")
        code = secrets.token_urlsafe(16)
        self.codes[code] = (asked["code_challenge"], asked["redirect_uri"], self.signs_in())
        return RedirectResponse(f"{asked['redirect_uri']}?{urlencode({'code': code, 'state': asked['state']})}")

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.exchanges.append(form)
        issued = self.codes.pop(form.get("code", ""), None)
        cors = {"access-control-allow-origin": "*"}
        if (
            issued is None
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != CLIENT_ID
            or form.get("redirect_uri") != issued[1]
            or s256(form.get("code_verifier", "")) != issued[0]
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400, headers=cors)
        answer = {"access_token": issued[2], "id_token": "x", "refresh_token": "y", "token_type": "Bearer"}
        return JSONResponse({**answer, "expires_in": 3600}, headers=cors)


@dataclass
class HostedConsole:
    url: str  # the console's index, as ConsoleUrl names it
    pages: HostedPages
    pages_url: str


@pytest.fixture
def hosted_console(desk: Desk, tmp_path: Path) -> Iterator[HostedConsole]:
    """web/console/ on a host of its own with no local sign-in, config.json naming the APIs and the hosted pages
    (on another origin); whoever signs in there is, until a test says otherwise, an agent of the desk."""
    grace = desk.add_agent("Grace Hopper", status="away")
    pages = HostedPages(signs_in=lambda: mint_token(str(desk.tenant), "agent", agent_id=grace))
    console = tmp_path / "console"
    shutil.copytree(REPO / "web" / "console", console)
    idp = Starlette(
        routes=[Route("/oauth2/authorize", pages.authorize), Route("/oauth2/token", pages.token, methods=["POST"])]
    )
    with (
        running_gateway(idp) as pages_url,
        running_gateway(Starlette(routes=static_routes(console_dir=console))) as host,
    ):
        (console / "config.json").write_text(
            json.dumps(
                {
                    "apiBaseUrl": desk.stack.http_url,
                    "websocketUrl": desk.stack.chat.websocket_url,
                    "hostedSignIn": {
                        "authorizeUrl": f"{pages_url}/oauth2/authorize",
                        "tokenUrl": f"{pages_url}/oauth2/token",
                        "clientId": CLIENT_ID,
                        "scope": "openid email profile",
                    },
                }
            )
        )
        yield HostedConsole(url=f"{host}/console/", pages=pages, pages_url=pages_url)


def _stored_token(driver: WebDriver) -> str | None:
    token: str | None = driver.execute_script("return sessionStorage.getItem('support-console.token')")
    return token


def _refused(driver: WebDriver) -> str:
    """The console stayed on its sign-in page, signed in as nobody; the notice it shows."""
    wait_until(driver, lambda d: d.find_element(By.ID, "hosted-sign-in"))
    notice = wait_until(driver, lambda d: d.find_element(By.ID, "notice").text)
    assert not driver.find_element(By.ID, "views").is_displayed()
    assert _stored_token(driver) is None
    return str(notice)


def test_the_hosted_sign_in_is_a_code_with_pkce_and_a_state_checked_on_return(
    hosted_console: HostedConsole, agent_browser: WebDriver, desk: Desk, screenshot: Shot
) -> None:
    # Given the console as deployed, when an agent presses "Sign in" and signs in at the hosted page
    agent_browser.get(hosted_console.url)
    button = wait_until(agent_browser, lambda d: d.find_element(By.ID, "hosted-sign-in"))
    assert not agent_browser.find_elements(By.ID, "local-tenant")  # no local sign-in where none is served
    assert_accessible(agent_browser)
    button.click()

    # Then they are in, as themselves
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "connection").text == "live")
    assert agent_browser.find_element(By.ID, "who-name").text == "Grace Hopper (agent)"
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "presence-away").is_selected())
    # through a code asked with a random state and an S256 challenge (no token in any address) ...
    (asked,) = hosted_console.pages.authorized
    assert {k: asked[k] for k in ("response_type", "client_id", "redirect_uri", "scope", "code_challenge_method")} == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": hosted_console.url,
        "scope": "openid email profile",
        "code_challenge_method": "S256",
    }
    assert len(asked["state"]) >= 43 and len(asked["code_challenge"]) == 43  # 32 random bytes; a SHA-256
    # ... traded once, from the browser, with the verifier whose S256 is the challenge
    (exchange,) = hosted_console.pages.exchanges
    assert exchange["grant_type"] == "authorization_code" and exchange["redirect_uri"] == hosted_console.url
    assert s256(exchange["code_verifier"]) == asked["code_challenge"]
    # and the answer is taken out of the address, the sign-in under way forgotten
    query = parse_qs(urlsplit(agent_browser.current_url).query)
    assert "code" not in query and "state" not in query
    pending = agent_browser.execute_script("return sessionStorage.getItem('support-console.hosted-sign-in')")
    assert pending is None
    screenshot(agent_browser, "console-hosted-sign-in")

    # Signed out, a pasted token works as well.
    agent_browser.find_element(By.ID, "sign-out").click()
    area = wait_until(agent_browser, lambda d: d.find_element(By.ID, "token-input"))
    area.send_keys(mint_token(str(desk.tenant), "admin"))
    agent_browser.find_element(By.CSS_SELECTOR, "#token-input ~ button[type=submit]").click()
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "who-name").text == "Admin (admin)")


def _attackers_code(console: HostedConsole, attacker_token: str) -> tuple[str, str]:
    """What an attacker gets by starting a sign-in of their own at the hosted page (their own challenge and
    state, the console's redirect URI) and stopping at the redirect: a code for their account, and their state."""
    console.pages.signs_in = lambda: attacker_token
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": console.url,
        "state": state,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    answer = httpx.get(f"{console.pages_url}/oauth2/authorize", params=params, follow_redirects=False)
    assert answer.status_code in (302, 307)
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    console.pages.authorized.clear()
    return code, state


def test_a_link_with_an_attackers_code_signs_nobody_in(hosted_console: HostedConsole, agent_browser: WebDriver) -> None:
    # Given an attacker's code for the attacker's own desk, in a link mailed to an agent
    attacker = mint_token("a7ac0000-0000-4000-8000-00000000000a", "admin")
    code, state = _attackers_code(hosted_console, attacker)

    # When the agent opens it (no sign-in under way in their tab)
    agent_browser.get(f"{hosted_console.url}?{urlencode({'code': code, 'state': state})}")

    # Then the console refuses it before any exchange, and the code leaves the address
    assert "did not ask for" in _refused(agent_browser)
    assert hosted_console.pages.exchanges == []
    assert "code=" not in agent_browser.current_url


def test_a_link_with_another_state_is_refused_while_a_sign_in_is_under_way(
    hosted_console: HostedConsole, agent_browser: WebDriver
) -> None:
    # Given an agent who pressed "Sign in" and is on the hosted page (their tab holds a state and a verifier)
    hosted_console.pages.hold = True
    agent_browser.get(hosted_console.url)
    wait_until(agent_browser, lambda d: d.find_element(By.ID, "hosted-sign-in")).click()
    wait_until(agent_browser, lambda d: d.title == "Sign in")
    (theirs,) = hosted_console.pages.authorized
    hosted_console.pages.hold = False

    # When, instead, the attacker's link lands in that tab
    code, state = _attackers_code(hosted_console, mint_token("a7ac0000-0000-4000-8000-00000000000a", "admin"))
    assert state != theirs["state"]
    agent_browser.get(f"{hosted_console.url}?{urlencode({'code': code, 'state': state})}")

    # Then it is refused without an exchange; and the state, used up, cannot be replayed either
    assert "did not ask for" in _refused(agent_browser)
    assert hosted_console.pages.exchanges == []
    agent_browser.get(f"{hosted_console.url}?{urlencode({'code': code, 'state': theirs['state']})}")
    assert "did not ask for" in _refused(agent_browser)
    assert hosted_console.pages.exchanges == []


def test_a_link_with_a_token_in_its_fragment_signs_nobody_in(
    hosted_console: HostedConsole, agent_browser: WebDriver
) -> None:
    # Given the implicit grant's answer, crafted with the attacker's token (what signed victims in before)
    attacker = mint_token("a7ac0000-0000-4000-8000-00000000000a", "admin")

    # When an agent opens it
    agent_browser.get(f"{hosted_console.url}#access_token={attacker}&token_type=Bearer")

    # Then nobody is signed in, and the token leaves the address
    assert "does not accept" in _refused(agent_browser)
    assert "access_token" not in agent_browser.current_url
