"""Log in to Superset as a user through its login form, open a dashboard in headless Chromium, wait until
every chart has rendered, save a screenshot and print what was seen as JSON:

    python screenshot.py URL USER PASSWORD_FILE SLUG OUT.png
    {"title": "...", "charts": 5, "rendered": 5, "errors": [], "titles": [...]}

"rendered" counts charts that drew an SVG or canvas; "errors" holds the text of every error alert. Run with
the Python of the Superset venv (it has selenium); chromium and chromedriver come from Debian.
"""
import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait


def login(driver, url, user, password):
    """Logs in through the login form. The form is a React page (Superset 6.x): keys typed before its
    scripts have taken the inputs over are lost on a slow machine, so the form is filled again, from a fresh
    page, until the browser leaves /login (three tries, 30 s each)."""
    for attempt in range(3):
        driver.get(url.rstrip("/") + "/login/")
        short = WebDriverWait(driver, 30)
        short.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input[name=username], #username")))
        time.sleep(1 + attempt * 2)  # let the scripts take the form over
        name = driver.find_element(By.CSS_SELECTOR, "input[name=username], #username")
        name.clear()
        name.send_keys(user)
        secret = driver.find_element(By.CSS_SELECTOR, "input[name=password], #password")
        secret.clear()
        # Enter in the password field submits the form.
        secret.send_keys(password + Keys.ENTER)
        try:
            short.until(lambda d: "/login" not in d.current_url)
            return
        except Exception:  # still on the login page: fill it again
            if attempt == 2:
                raise


def main():
    url, user, password_file, slug, out = sys.argv[1:6]
    with open(password_file, encoding="utf-8") as f:
        password = f.read().strip()
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        wait = WebDriverWait(driver, 90)
        login(driver, url, user, password)
        driver.get(f"{url.rstrip('/')}/superset/dashboard/{slug}/")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-test=chart-container], .dashboard-component-chart-holder")))
        deadline = time.time() + 90
        while True:
            holders = driver.find_elements(By.CSS_SELECTOR, ".dashboard-component-chart-holder")
            drawn = [h for h in holders if h.find_elements(By.CSS_SELECTOR, "svg, canvas, table")]
            errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "[role=alert], .alert-danger, [data-test=error-message]") if e.text.strip()]
            loading = driver.find_elements(By.CSS_SELECTOR, ".loading, [aria-label=loading], [data-test=loading-indicator]")
            if (holders and len(drawn) == len(holders) and not loading) or errors or time.time() > deadline:
                break
            time.sleep(0.5)
        time.sleep(2)  # let the last animation end
        titles = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-test=editable-title-input], .editable-title")]
        driver.save_screenshot(out)
        print(json.dumps({"title": driver.title, "charts": len(holders), "rendered": len(drawn),
                          "errors": errors, "titles": titles, "url": driver.current_url}))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
