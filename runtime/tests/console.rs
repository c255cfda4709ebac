//! The web console in a real Chromium, driven through WebDriver (Debian's `chromium` and
//! `chromium-driver`): one worker and one browser session shared by a sequence of steps, as a
//! user would go through the pages. Screenshots of the main pages are saved to a temporary
//! folder (or to `CONSOLE_TEST_SCREENSHOTS` when set).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::{free_port, produce, read_topic, wait_for, WorkerOptions, WorkerProcess};

const PACKAGES: &str = "Debian's chromium and chromium-driver packages (apt-get install chromium chromium-driver; scripts/test installs them)";
/// A record value that would run if the console ever put record data in the page as HTML.
const SCRIPT_VALUE: &str =
    "<script>window.__sluiceXss = 1</script><img src=x onerror=\"window.__sluiceXss = 2\">";
const STEP: Duration = Duration::from_secs(30);

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// chromedriver on a free loopback port, and a headless Chromium session through it.
struct Browser {
    client: Client,
    driver: Child,
}

impl Browser {
    async fn start(profile: &Path) -> Self {
        let driver_bin = on_path("chromedriver").unwrap_or_else(|| {
            panic!("chromedriver is not installed: the console's browser tests need {PACKAGES}")
        });
        let chromium = on_path("chromium").unwrap_or_else(|| {
            panic!("chromium is not installed: the console's browser tests need {PACKAGES}")
        });
        let port = free_port();
        let driver = Command::new(driver_bin)
            .args([
                format!("--port={port}"),
                "--allowed-ips=127.0.0.1".to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that `drop` can stop Chromium with it.
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        wait_for(STEP, "chromedriver to listen", || {
            let addr = format!("127.0.0.1:{port}");
            async move { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) }
        })
        .await;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_string(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--disable-breakpad", "--window-size=1366,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session through chromedriver");
        Self { client, driver }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        let c = self.client.clone();
        let selector = selector.to_string();
        wait_for(STEP, &format!("an element matching {selector}"), || {
            let c = c.clone();
            let selector = selector.clone();
            async move { c.find(Locator::Css(&selector)).await.ok() }
        })
        .await
    }

    /// Waits until the element matching `selector` has text for which `check` holds.
    async fn text_where(&self, selector: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let c = self.client.clone();
        let check = &check;
        wait_for(STEP, what, || {
            let c = c.clone();
            async move {
                let text = c
                    .find(Locator::Css(selector))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                check(&text).then_some(text)
            }
        })
        .await
    }

    async fn text(&self, selector: &str) -> String {
        self.css(selector).await.text().await.expect("element text")
    }

    async fn fill(&self, selector: &str, value: &str) {
        let input = self.css(selector).await;
        input.clear().await.expect("clear");
        input.send_keys(value).await.expect("type");
    }

    async fn click(&self, selector: &str) {
        self.css(selector).await.click().await.expect("click");
    }

    async fn screenshot(&self, dir: &Path, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("save screenshot");
    }

    async fn script(&self, js: &str) -> Value {
        self.client.execute(js, vec![]).await.expect("run script")
    }
}

impl Drop for Browser {
    /// After a panic the session was never closed: stop the whole group chromedriver leads
    /// (Chromium included), not only chromedriver.
    ///
    /// The group is named after `--`: procps-ng 4.0's `kill -KILL -12345` reads `-12345` as
    /// `-1` and kills every process the user may signal (it once took a whole CI run down).
    fn drop(&mut self) {
        let group = self.driver.id();
        if group > 1 {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{group}")])
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn console_pages_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let shots = std::env::var_os("CONSOLE_TEST_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    let bootstrap = worker.bootstrap();
    produce(
        &bootstrap,
        "raw",
        &[
            br#"{"n": 1, "text": "hello"}"#.to_vec(),
            b"not json {".to_vec(),
            SCRIPT_VALUE.as_bytes().to_vec(),
        ],
    )
    .await;
    let browser = Browser::start(&dir.path().join("chromium-profile")).await;
    let ui = worker.url("/ui/");

    // New connector: the form comes from the plugin's config definition, and validation
    // errors land on their field.
    browser.goto(&format!("{ui}#/new")).await;
    browser.css("#plugin option[value]").await;
    let options = browser
        .client
        .find_all(Locator::Css("#plugin option"))
        .await
        .unwrap();
    let mut picked = false;
    for option in options {
        if option.text().await.unwrap().contains("file-sink") {
            option.click().await.unwrap();
            picked = true;
            break;
        }
    }
    assert!(picked, "the plugin picker lists the file sink");
    browser.fill("#connector-name", "tolerant").await;
    browser
        .fill("input[name='errors.tolerance']", "sometimes")
        .await;
    let error = browser
        .text_where(
            "[data-error-for='errors.tolerance']",
            "the validation error on errors.tolerance",
            |t| !t.is_empty(),
        )
        .await;
    assert!(
        error.contains("sometimes"),
        "error names the value: {error}"
    );
    browser.screenshot(&shots, "new-connector").await;

    // Fix it and create the connector through the form; the page goes to the connector.
    // Relative to the worker's folder, so screenshots show no machine path.
    browser.fill("input[name='errors.tolerance']", "all").await;
    browser.fill("input[name='topics']", "raw").await;
    browser.fill("input[name='file']", "sink.txt").await;
    browser
        .fill("input[name='errors.deadletterqueue.topic.name']", "raw-dlq")
        .await;
    browser
        .css("select[name='errors.deadletterqueue.context.headers.enable']")
        .await
        .select_by_value("true")
        .await
        .unwrap();
    browser.fill("input[name='value.converter']", "json").await;
    browser
        .text_where("#error-count", "the form to validate clean", |t| {
            t == "Valid"
        })
        .await;
    browser.click("#create").await;
    browser.css("#connector-state [data-state='RUNNING']").await;
    let status = worker.get("/connectors/tolerant/status").await;
    assert_eq!(status["connector"]["state"], "RUNNING");
    browser.css("#tasks [data-task='0']").await;

    // The bad records went to the dead letter topic (checked with a Kafka client first).
    let dead = wait_for(
        Duration::from_secs(60),
        "the script record in the dead letter topic",
        || {
            let bootstrap = bootstrap.clone();
            async move {
                let dead = tokio::task::spawn_blocking(move || {
                    read_topic(&bootstrap, "raw-dlq", 3, Duration::from_secs(2))
                })
                .await
                .unwrap();
                dead.iter()
                    .any(|r| r.value.as_deref() == Some(SCRIPT_VALUE.as_bytes()))
                    .then_some(dead)
            }
        },
    )
    .await;
    browser.screenshot(&shots, "connector").await;

    // Dead letters: grouped by exception, a record's context headers decoded.
    browser.goto(&format!("{ui}#/dlq/raw-dlq")).await;
    let script_dead = dead
        .iter()
        .find(|r| r.value.as_deref() == Some(SCRIPT_VALUE.as_bytes()))
        .expect("the script record was dead-lettered");
    let row = format!(
        "tr[data-record='{}:{}']",
        script_dead.partition, script_dead.offset
    );
    browser.click(&format!("{row} button.open")).await;
    let original = browser
        .text_where(
            "#dead-letter tr[data-header='topic'] td",
            "the decoded original topic",
            |t| !t.is_empty(),
        )
        .await;
    assert_eq!(original, "raw");
    let stage = browser
        .text("#dead-letter tr[data-header='stage'] td")
        .await;
    assert!(!stage.is_empty(), "the failing stage is shown");
    let exception = browser
        .text("#dead-letter tr[data-header='exception'] td")
        .await;
    assert!(!exception.is_empty(), "the exception class is shown");
    let group = browser.css("[data-exception]").await;
    assert_eq!(
        group.attr("data-exception").await.unwrap().unwrap(),
        exception
    );
    let shown_value = browser.text("#record-detail pre.value").await;
    assert_eq!(
        shown_value, SCRIPT_VALUE,
        "the script value is shown as text"
    );
    browser.screenshot(&shots, "dead-letters").await;

    // Replay it: the page warns first; a Kafka client sees it arrive in the original topic.
    browser
        .click(&format!("{row} input[type='checkbox']"))
        .await;
    browser.click("#replay").await;
    let warning = browser.text("#replay-confirm").await;
    assert!(
        warning.contains("replayed twice is produced twice"),
        "{warning}"
    );
    browser.click("#replay-confirm-yes").await;
    let result = browser
        .text_where("#replay-result", "the replay's answer", |t| {
            t.contains("Replayed 1")
        })
        .await;
    assert!(result.contains("raw-"), "{result}");
    let raw = tokio::task::spawn_blocking({
        let bootstrap = bootstrap.clone();
        move || read_topic(&bootstrap, "raw", 4, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert_eq!(raw.len(), 4, "the replayed record arrived in raw");
    assert_eq!(raw[3].value.as_deref(), Some(SCRIPT_VALUE.as_bytes()));
    assert!(
        raw[3]
            .headers
            .iter()
            .all(|(k, _)| !k.starts_with("__connect.errors.")),
        "context headers are not replayed"
    );

    // Topics and the message browser: the script tag is text, and it never ran.
    browser.goto(&format!("{ui}#/topics")).await;
    browser.css("#topics tr[data-topic='raw']").await;
    browser.goto(&format!("{ui}#/topic/raw")).await;
    browser.click("#read").await;
    browser.css("#messages tr[data-offset='3']").await;
    let cells = browser.text("#messages tbody").await;
    assert!(cells.contains("<script>window.__sluiceXss"), "{cells}");
    assert!(cells.contains(r#"{"n": 1, "text": "hello"}"#), "{cells}");
    browser
        .click("#messages tr[data-offset='0'] button.open")
        .await;
    let pretty = browser.text("#record-detail pre.value").await;
    assert!(
        pretty.contains("\"n\": 1,\n"),
        "JSON is pretty-printed: {pretty}"
    );
    browser
        .click("#messages tr[data-offset='2'] button.open")
        .await;
    assert_eq!(browser.text("#record-detail pre.value").await, SCRIPT_VALUE);
    browser.screenshot(&shots, "messages").await;
    assert_eq!(
        browser
            .script("return [typeof window.__sluiceXss, document.querySelectorAll('main script, main img').length];")
            .await,
        json!(["undefined", 0]),
        "nothing from a record ran or became an element"
    );

    // Consumer groups: the sink's group with its lag per partition.
    browser.goto(&format!("{ui}#/group/connect-tolerant")).await;
    browser.css("#lag tbody tr").await;

    // Connectors list: select the connector and pause it.
    browser.goto(&format!("{ui}#/connectors")).await;
    let row = "#connectors tr[data-connector='tolerant']";
    browser.css(&format!("{row} [data-state='RUNNING']")).await;
    browser
        .click(&format!("{row} input[type='checkbox']"))
        .await;
    browser.click("[data-bulk='pause']").await;
    browser.css(&format!("{row} [data-state='PAUSED']")).await;
    let status = worker.get("/connectors/tolerant/status").await;
    assert_eq!(status["connector"]["state"], "PAUSED");
    browser.screenshot(&shots, "connectors").await;

    // A refused request shows the REST API's error text: on the page for a connector that
    // does not exist, and beside the button whose request was refused.
    browser.goto(&format!("{ui}#/connector/nope")).await;
    let refusal = browser
        .text_where(
            "main .error",
            "the REST error for an unknown connector",
            |t| !t.is_empty(),
        )
        .await;
    assert!(refusal.contains("Connector nope not found"), "{refusal}");
    browser.click("[data-action='pause']").await;
    let beside = browser
        .text_where(
            "[data-action='pause'] + .outcome",
            "the refusal beside the pause button",
            |t| !t.is_empty(),
        )
        .await;
    assert!(beside.contains("404"), "{beside}");

    eprintln!("console screenshots in {}", shots.display());
    browser
        .client
        .clone()
        .close()
        .await
        .expect("close the browser");
}
