"""The dashboard in a real browser (Debian's chromium, driven by Playwright), against the
session's real services: what operators and approvers see and do.

Every test saves a screenshot of its page (``tests.helpers.browser.screenshot_dir``).
Playwright's ``expect`` polls until its deadline; nothing sleeps.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from contracts import OrchestrationStatus, Topology
from deploy.processes import ServiceGroup
from durable import EntityId
from durable.client import DurableClient
from tests.conftest import AMQP_URL, MANAGEMENT_KEY, START_KEY, unique
from tests.helpers.approval import HEAD, MANAGER, ApprovalBus, approval_bus, proposal
from tests.helpers.browser import VIEWPORT, chromium, screenshot, screenshot_dir
from tests.helpers.waiting import assert_eventually, wait_for_status

pytestmark = pytest.mark.e2e

REFRESH_DEADLINE_MS = 20_000
"""Long enough for the pages' auto-refresh (every 5 to 10 s) to show a change."""


@pytest.fixture(scope="module")
async def browser(services: ServiceGroup) -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory)


@pytest.fixture
async def page(browser: Browser, base_url: str) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=base_url, viewport=VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    yield page
    await context.close()


async def log_in(page: Page, key: str = MANAGEMENT_KEY, target: str = "/dashboard/") -> None:
    await page.goto(target)
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await page.get_by_label("Access key").fill(key)
    await page.get_by_role("button", name="Log in").click()


@pytest.fixture
async def operator(page: Page) -> Page:
    """A page logged in with a management key."""
    await log_in(page)
    await expect(page.get_by_role("heading", name="Instances")).to_be_visible()
    return page


async def test_login_refuses_a_wrong_key(page: Page, shots: Path) -> None:
    for refused in ("not-a-key-of-this-deployment", START_KEY):
        await log_in(page, refused)
        await expect(page.get_by_role("alert")).to_contain_text("does not open the dashboard")
        await screenshot(page, shots, "login-refused")
        assert not await page.context.cookies()
        await page.goto("/dashboard/")
        await expect(page.get_by_role("heading", name="Log in")).to_be_visible()


async def test_the_list_shows_a_started_instance_and_filters_it(
    operator: Page, client: DurableClient, shots: Path
) -> None:
    prefix = unique("dash-list-")
    first = await client.start_new("hello_cities", f"{prefix}-a")
    await client.wait_for_completion(first, timeout=30)

    await operator.get_by_label("Id prefix").fill(prefix)
    await operator.get_by_role("button", name="Filter").click()
    rows = operator.locator("table.instances tbody tr[data-instance-id]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Completed")
    await expect(operator.locator('[data-status="Completed"]')).to_have_text("1")

    # Auto-refresh: an instance started now appears without a reload.
    second = await client.start_new("waits_for_approval", f"{prefix}-b", 3600)
    await expect(rows).to_have_count(2, timeout=REFRESH_DEADLINE_MS)
    await screenshot(operator, shots, "instances")

    await operator.get_by_label("Running").check()
    await operator.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-instance-id", second)
    await operator.get_by_label("Orchestrator").fill("hello_cities")
    await operator.get_by_role("button", name="Filter").click()
    await expect(operator.get_by_text("No instance matches.")).to_be_visible()
    await client.terminate(second, "test over")


async def test_the_list_and_the_instance_page_show_the_version_an_instance_runs_under(
    operator: Page, client: DurableClient, shots: Path
) -> None:
    prefix = unique("dash-version-")
    versioned = await client.start_new("reports_version", f"{prefix}-a", version="2.0")
    unversioned = await client.start_new("reports_version", f"{prefix}-b")
    for instance_id in (versioned, unversioned):
        await client.wait_for_completion(instance_id, timeout=30)

    await operator.get_by_label("Id prefix").fill(prefix)
    await operator.get_by_role("button", name="Filter").click()
    version = 'tr[data-instance-id="{}"] [data-testid="version"]'
    await expect(operator.locator(version.format(versioned))).to_have_text("2.0")
    await expect(operator.locator(version.format(unversioned))).to_have_text("none")
    await screenshot(operator, shots, "instances-versions")

    await operator.goto(f"/dashboard/instance?id={versioned}")
    await expect(operator.get_by_test_id("version")).to_have_text("2.0")
    await operator.goto(f"/dashboard/instance?id={unversioned}")
    await expect(operator.get_by_test_id("runtime-status")).to_have_text("Completed")
    await expect(operator.get_by_test_id("version")).to_have_count(0)


async def test_the_instance_page_shows_one_bar_per_activity(
    operator: Page, client: DurableClient, shots: Path
) -> None:
    cities = ["Tokyo", "Seattle", "London"]
    instance_id = await client.start_new("hello_cities", unique("dash-timeline-"), cities)
    await client.wait_for_completion(instance_id, timeout=30)

    await operator.goto(f"/dashboard/instance?id={instance_id}")
    await expect(operator.get_by_test_id("runtime-status")).to_have_text("Completed")
    bars = operator.locator('[data-testid="timeline"] .bar[data-kind="activity"]')
    await expect(bars).to_have_count(len(cities))
    for index in range(len(cities)):
        await expect(bars.nth(index)).to_have_attribute("data-outcome", "completed")
        await expect(bars.nth(index)).to_have_attribute("title", re.compile(r"^say_hello: "))
    await expect(operator.get_by_test_id("output")).to_contain_text("Hello Tokyo!")
    await screenshot(operator, shots, "instance")


async def test_terminate_from_the_page_terminates_the_instance(
    operator: Page, client: DurableClient, http: httpx.AsyncClient, shots: Path
) -> None:
    instance_id = await client.start_new("waits_on_child", unique("dash-terminate-"))

    await wait_for_status(client, instance_id, OrchestrationStatus.RUNNING)
    await operator.goto(f"/dashboard/instance?id={instance_id}")
    await expect(operator.locator('.bar[data-kind="sub_orchestration"]')).to_have_count(1)
    await expect(operator.get_by_test_id("child")).to_have_count(1)
    await screenshot(operator, shots, "instance-running")

    await operator.locator('a[data-action="terminate"]').click()
    await expect(operator.get_by_role("heading", name=f"Terminate: {instance_id}?")).to_be_visible()
    await operator.get_by_label("Reason").fill("no longer needed")
    await screenshot(operator, shots, "confirm-terminate")
    await operator.get_by_role("button", name="Terminate").click()
    await expect(operator.get_by_role("status")).to_contain_text("Terminate: sent.")

    async def terminated() -> bool:
        answer = await http.get(f"/runtime/webhooks/durabletask/instances/{instance_id}")
        assert answer.json()["runtimeStatus"] == "Terminated", answer.text
        return True

    await assert_eventually(terminated, timeout=30)
    await operator.reload()
    await expect(operator.get_by_test_id("runtime-status")).to_have_text("Terminated")
    await expect(operator.get_by_test_id("output")).to_contain_text("no longer needed")


@pytest.fixture
async def bus(services: ServiceGroup, topology: Topology) -> AsyncIterator[ApprovalBus]:
    async with approval_bus(AMQP_URL, topology) as bus:
        yield bus


async def test_a_waiting_proposal_shows_under_its_assignee_until_approved(
    operator: Page, bus: ApprovalBus, client: DurableClient, shots: Path
) -> None:
    proposal_id = unique("dash-p-")
    await bus.submit(proposal(proposal_id, amount=800))
    await bus.request(proposal_id, 1)

    # The test deployment's manager has three seconds (an answer, one reminder) before the
    # proposal moves up to the head of department, who has as long again. The page shows it
    # under whoever has it when it is read, and that person answers: a slow page then
    # costs an escalation, not the test.
    await operator.goto("/dashboard/approvals")
    row = operator.locator(f'section.assignee tr[data-proposal="{proposal_id}"]')
    await expect(row).to_be_visible(timeout=2_000)
    assignee = await row.evaluate("row => row.closest('section').dataset.assignee")
    assert assignee in (MANAGER, HEAD), assignee
    await expect(row).to_contain_text("manager" if assignee == MANAGER else "head_of_department")
    await bus.respond(proposal_id, assignee, "approve", "ship it")
    await screenshot(operator, shots, "approvals-waiting")

    final = await client.wait_for_completion(proposal_id, timeout=30)
    assert final.output["outcome"] == "approved", final.output
    await expect(row).to_have_count(0, timeout=REFRESH_DEADLINE_MS)
    decided = operator.locator(f'[data-testid="decisions"] tr[data-proposal="{proposal_id}"]')
    await expect(decided).to_contain_text("approved")
    await expect(decided).to_contain_text(assignee)
    await screenshot(operator, shots, "approvals")

    await decided.get_by_role("link", name=proposal_id).click()
    await expect(operator.get_by_test_id("runtime-status")).to_have_text("Completed")
    await expect(operator.locator('.bar[data-kind="event_raised"]')).to_have_count(1)
    await screenshot(operator, shots, "instance-approval")


async def test_the_dead_letter_page_lists_the_queues(operator: Page, shots: Path) -> None:
    await operator.goto("/dashboard/dead-letters")
    queues = operator.locator('[data-testid="queues"] tbody tr')
    await expect(queues.first).to_be_visible()
    assert await queues.count() >= 4  # the partitions' at least
    await screenshot(operator, shots, "dead-letters")


async def test_the_entities_page_pages_by_name_shows_the_lock_holder_and_signals(
    operator: Page, client: DurableClient, shots: Path
) -> None:
    prefix = unique("dash-ent-")
    keys = [f"{prefix}-{n:02}" for n in range(11)]
    for key in keys:
        await client.signal_entity(EntityId("counter", key), "add", 1)
    holder = await client.start_new("holds_counter", unique("dash-holder-"), keys[0])

    async def held() -> bool:
        record = await client.get_entity(EntityId("counter", keys[0]))
        assert record is not None
        assert record.locked_by == holder, record
        for key in keys[1:]:
            assert (await client.read_entity_state(EntityId("counter", key))).entity_exists
        return True

    await assert_eventually(held, timeout=30)

    await operator.get_by_role("link", name="Entities").click()
    await operator.get_by_label("Entity name").fill("counter")
    await operator.get_by_label("Per page").select_option("10")
    await operator.get_by_role("button", name="Filter").click()
    rows = operator.locator("table.entities tbody tr[data-entity]")
    await expect(rows).to_have_count(10)
    await screenshot(operator, shots, "entities")
    # Eleven counters of this test alone: at least two pages; follow them to the last key.
    last = operator.locator(f'tr[data-entity="counter@{keys[-1]}"]')
    for _ in range(100):
        if await last.count():
            break
        await operator.get_by_role("link", name="Next page").click()
        await expect(operator.get_by_role("link", name="First page")).to_be_visible()
    await expect(last).to_contain_text("free")

    await operator.goto(f"/dashboard/entity?name=counter&key={keys[0]}")
    await expect(operator.get_by_test_id("locked-by")).to_have_text(holder)
    await expect(operator.get_by_test_id("state")).to_have_text("1")
    await client.raise_event(holder, "release")

    await operator.get_by_role("link", name="Signal").click()
    await expect(operator.get_by_role("heading", name=f"Signal counter@{keys[0]}?")).to_be_visible()
    await operator.get_by_label("Operation").fill("add")
    await operator.get_by_label("Input (JSON)").fill("41")
    await screenshot(operator, shots, "confirm-signal")
    await operator.get_by_role("button", name="Signal").click()
    await expect(operator.get_by_role("status")).to_contain_text("Signal add: sent.")

    async def added() -> bool:
        state = await client.read_entity_state(EntityId("counter", keys[0]))
        assert state.entity_state == 42, state
        return True

    await assert_eventually(added, timeout=30)
    await operator.reload()
    await expect(operator.get_by_test_id("state")).to_have_text("42")
    await expect(operator.get_by_test_id("locked-by")).to_have_text("Not locked.")
    await screenshot(operator, shots, "entity")
