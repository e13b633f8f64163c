"""The catalog in a real browser: headless Chromium (Debian's chromium + chromium-driver) via selenium.

Screenshots of each page go to the test's tmp directory (``pytest --basetemp`` to keep them).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from balancer import split_balancer
from catalog_helpers import attach_trust, populate, running_catalog, serving_process
from helpers import Registry, Runner

from mloci.catalog import CatalogConfig

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser() -> Iterator[object]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail(
            "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.implicitly_wait(15)  # a loaded CI machine may take a while to render the next page
    try:
        yield driver
    finally:
        driver.quit()


def _arrived(driver: object, fragment: str, *, at_end: bool = False) -> None:
    """Wait until a click, submit or back has navigated to a URL containing (or ending with) ``fragment``."""
    from selenium.webdriver.support.ui import WebDriverWait

    def there(d: object) -> bool:
        url: str = d.current_url  # type: ignore[attr-defined]
        return url.endswith(fragment) if at_end else fragment in url

    WebDriverWait(driver, 30).until(there)


def _full_page(driver: object, path: Path) -> None:
    """A screenshot of the whole page, not just the window."""
    height = driver.execute_script("return document.documentElement.scrollHeight")  # type: ignore[attr-defined]
    driver.set_window_size(1280, min(max(int(height) + 160, 600), 5000))  # type: ignore[attr-defined]
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    driver.set_window_size(1280, 1000)  # type: ignore[attr-defined]


def test_browse_search_open_compare(
    browser: object, registry: Registry, mloci: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    shots = tmp_path / "screenshots"
    shots.mkdir()
    populate(mloci, tmp_path, f"{registry.host}/ml/")
    attach_trust(mloci, tmp_path, f"{registry.host}/ml/churn-model:1.2.0", monkeypatch)
    keys = (tmp_path / "signing.pub",)
    config = CatalogConfig(registry=registry.host, namespace="ml", refresh=0, verify_keys=keys)
    with running_catalog(config) as server:
        driver.get(server.url + "/")  # type: ignore[attr-defined]
        cards = driver.find_elements(By.CSS_SELECTOR, "#models .card h2 a")  # type: ignore[attr-defined]
        assert [c.text for c in cards] == ["churn-model", "team/fraud-detector"]
        badges = driver.find_elements(By.CSS_SELECTOR, "#models .card .badge")  # type: ignore[attr-defined]
        assert [b.text for b in badges] == ["signed", "SBOM", "provenance", "tests"]
        _full_page(driver, shots / "models.png")

        box = driver.find_element(By.ID, "q")  # type: ignore[attr-defined]
        box.clear()
        box.send_keys("auc>0.9")
        box.submit()
        _arrived(driver, "q=")
        cards = driver.find_elements(By.CSS_SELECTOR, "#models .card h2 a")  # type: ignore[attr-defined]
        assert [c.text for c in cards] == ["churn-model"]
        _full_page(driver, shots / "search.png")

        driver.get(server.url + "/")  # type: ignore[attr-defined]
        Select(driver.find_element(By.ID, "env")).select_by_visible_text("prod")  # type: ignore[attr-defined]
        driver.find_element(By.CSS_SELECTOR, "form.search button").click()  # type: ignore[attr-defined]
        _arrived(driver, "env=prod")
        cards = driver.find_elements(By.CSS_SELECTOR, "#models .card h2 a")  # type: ignore[attr-defined]
        assert [c.text for c in cards] == ["churn-model"]

        cards[0].click()
        _arrived(driver, "/models/churn-model", at_end=True)
        charts = driver.find_elements(By.CSS_SELECTOR, "#metrics svg")  # type: ignore[attr-defined]
        assert len(charts) == 2 and all(c.size["height"] > 50 for c in charts)  # rendered, visible
        points = driver.find_elements(By.CSS_SELECTOR, "#metrics svg circle")  # type: ignore[attr-defined]
        assert len(points) == 6
        timeline = driver.find_elements(By.CSS_SELECTOR, "#timeline ol.timeline li")  # type: ignore[attr-defined]
        assert len(timeline) == 3 and "better auc" in driver.find_element(By.ID, "timeline").text  # type: ignore[attr-defined]
        _full_page(driver, shots / "model.png")

        versions = driver.find_element(By.ID, "versions")  # type: ignore[attr-defined]
        versions.find_element(By.LINK_TEXT, "1.2.0").click()
        _arrived(driver, "/versions/1.2.0")
        assert "mloci pull" in driver.find_element(By.ID, "pull").text  # type: ignore[attr-defined]
        attached = driver.find_element(By.ID, "referrers").text  # type: ignore[attr-defined]
        assert "sbom: CycloneDX" in attached and "test results" in attached and "signature" in attached
        verified = driver.find_elements(By.CSS_SELECTOR, "#referrers .tree .badge.ok")  # type: ignore[attr-defined]
        assert len(verified) == 2, attached  # the signature bundle and the DSSE provenance
        assert "https://slsa.dev/provenance/v1" in attached
        _full_page(driver, shots / "version.png")

        driver.back()  # type: ignore[attr-defined]
        _arrived(driver, "/models/churn-model", at_end=True)
        Select(driver.find_element(By.NAME, "a")).select_by_visible_text("1.0.0")  # type: ignore[attr-defined]
        Select(driver.find_element(By.NAME, "b")).select_by_visible_text("1.2.0")  # type: ignore[attr-defined]
        driver.find_element(By.CSS_SELECTOR, "form.compare button").click()  # type: ignore[attr-defined]
        _arrived(driver, "/compare")
        deltas = driver.find_element(By.ID, "metric-deltas").text  # type: ignore[attr-defined]
        assert "+0.12" in deltas
        _full_page(driver, shots / "compare.png")

        driver.set_window_size(390, 844)  # type: ignore[attr-defined]  # a phone
        driver.get(server.url + "/models/churn-model")  # type: ignore[attr-defined]
        width = driver.execute_script("return document.documentElement.scrollWidth")  # type: ignore[attr-defined]
        assert width <= 390, "the model page scrolls sideways on a phone"
        driver.save_screenshot(str(shots / "model-phone.png"))  # type: ignore[attr-defined]
        for path in (
            "/",
            "/models/churn-model/versions/1.2.0",
            "/compare?a=churn-model:1.0.0&b=churn-model:1.2.0",
        ):
            driver.get(server.url + path)  # type: ignore[attr-defined]
            width = driver.execute_script("return document.documentElement.scrollWidth")  # type: ignore[attr-defined]
            wide = driver.execute_script(  # type: ignore[attr-defined]
                "return [...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll'))"
                ".filter(e => e.getBoundingClientRect().right > 391)"
                ".slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + e.textContent.slice(0, 60))"
            )
            assert width <= 390, f"{path} scrolls sideways on a phone: {wide}"
    assert sorted(p.name for p in shots.iterdir()) == [
        "compare.png",
        "model-phone.png",
        "model.png",
        "models.png",
        "search.png",
        "version.png",
    ]


def test_promote_from_the_model_page(
    browser: object, registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    """The form in a real browser: its SameSite cookie, Origin and Sec-Fetch-Site headers pass the
    CSRF checks, and the caller's Basic credentials (sent by the browser) make the write."""
    import base64

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    populate(mloci, tmp_path, f"{registry.host}/ml/")
    basic = "Basic " + base64.b64encode(b"carol:carol-token").decode()
    with running_catalog(CatalogConfig(registry=registry.host, namespace="ml", refresh=0)) as server:
        driver.execute_cdp_cmd("Network.enable", {})  # type: ignore[attr-defined]
        driver.execute_cdp_cmd(  # type: ignore[attr-defined]
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": basic}}
        )
        driver.get(server.url + "/models/churn-model")  # type: ignore[attr-defined]
        form = driver.find_element(By.XPATH, "//form[input[@name='to' and @value='staging']]")  # type: ignore[attr-defined]
        Select(form.find_element(By.NAME, "reference")).select_by_visible_text("1.0.0")
        form.find_element(By.NAME, "reason").send_keys("from the browser")
        form.find_element(By.TAG_NAME, "button").click()
        _arrived(driver, "/models/churn-model/promote", at_end=True)
        assert "now points at" in driver.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
        _full_page(driver, tmp_path / "promoted.png")
        driver.find_element(By.LINK_TEXT, "Back to churn-model").click()  # type: ignore[attr-defined]
        _arrived(driver, "/models/churn-model", at_end=True)
        timeline = driver.find_element(By.ID, "timeline").text  # type: ignore[attr-defined]
        assert "from the browser" in timeline and "carol" in timeline


def test_a_form_rendered_by_one_replica_posts_to_another(
    browser: object, registry: Registry, mloci: Runner, tmp_path: Path
) -> None:
    """Behind a load balancer without session affinity: the page comes from one ``mloci serve``
    process, the post goes to another. With one --secret-file they agree; with two they do not,
    and the browser shows the documented 403 page."""
    import base64
    import os

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    populate(mloci, tmp_path, f"{registry.host}/ml/")
    secrets = []
    for name in ("shared", "other"):
        path = tmp_path / f"{name}.secret"
        path.write_bytes(base64.b64encode(os.urandom(48)))
        path.chmod(0o600)
        secrets.append(str(path))
    basic = "Basic " + base64.b64encode(b"carol:carol-token").decode()
    driver.execute_cdp_cmd("Network.enable", {})  # type: ignore[attr-defined]
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": basic}})  # type: ignore[attr-defined]
    common = ("--registry", registry.host, "--namespace", "ml", "--refresh", "0")

    def promote(url: str, version: str) -> str:
        driver.get(url + "/models/churn-model")  # type: ignore[attr-defined]
        form = driver.find_element(By.XPATH, "//form[input[@name='to' and @value='staging']]")  # type: ignore[attr-defined]
        Select(form.find_element(By.NAME, "reference")).select_by_visible_text(version)
        form.find_element(By.TAG_NAME, "button").click()
        _arrived(driver, "/models/churn-model/promote", at_end=True)
        return str(driver.find_element(By.TAG_NAME, "main").text)  # type: ignore[attr-defined]

    with (
        serving_process(*common, "--secret-file", secrets[0]) as a,
        serving_process(*common, "--secret-file", secrets[0]) as b,
        serving_process(*common, "--secret-file", secrets[1]) as c,
    ):
        with split_balancer(reads=a, writes=b) as balanced:
            assert "now points at" in promote(balanced, "1.0.0")
        with split_balancer(reads=a, writes=c) as mismatched:
            refused = promote(mismatched, "1.1.0")
            assert "403" in refused and "security token is missing or stale" in refused
