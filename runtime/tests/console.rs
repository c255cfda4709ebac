//! The web console in real browsers driven through WebDriver: Chromium (Debian's `chromium`
//! and `chromium-driver`) and Firefox (Debian's `firefox-esr`, with geckodriver from
//! crates.io). Each browser gets one worker and one session that go through the same steps
//! ([`console_pages`]), as a user would go through the pages. A missing browser or driver fails
//! its test with what to install. Screenshots of the main pages are saved to a temporary folder
//! (or to `CONSOLE_TEST_SCREENSHOTS/<browser>` when that is set).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::{
    free_port, metric_sample, produce, read_topic, wait_for, WorkerOptions, WorkerProcess,
};

/// The geckodriver release `scripts/test` installs and the Firefox test names when it is
/// missing.
const GECKODRIVER_INSTALL: &str = "cargo install geckodriver --version 0.37.1 --locked";
/// A record value that would run if the console ever put record data in the page as HTML.
const SCRIPT_VALUE: &str =
    "<script>window.__sluiceXss = 1</script><img src=x onerror=\"window.__sluiceXss = 2\">";
const STEP: Duration = Duration::from_secs(30);

/// The browsers the console is tested in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Chromium,
    Firefox,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Chromium => "chromium",
            Engine::Firefox => "firefox",
        }
    }

    /// The path of `program`, or a failure that says what to install.
    fn require(self, program: &str) -> PathBuf {
        let install = match (self, program) {
            (Engine::Chromium, _) => "Debian's chromium and chromium-driver packages (apt-get install chromium chromium-driver; scripts/test installs them)".to_string(),
            (Engine::Firefox, "geckodriver") => format!("geckodriver from crates.io ({GECKODRIVER_INSTALL}; scripts/test installs it)"),
            (Engine::Firefox, _) => "Debian's firefox-esr package (apt-get install firefox-esr; scripts/test installs it)".to_string(),
        };
        on_path(program).unwrap_or_else(|| {
            panic!(
                "{program} is not installed: the console's {} test needs {install}",
                self.name()
            )
        })
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// Preferences that keep Firefox off the network: the test machines have none, and a test
/// has no business reaching anywhere but the worker. geckodriver already sets some of these;
/// they are repeated so that this list says on its own what is off.
fn firefox_prefs() -> Value {
    // In groups: one `json!` of them all is deeper than the macro may recurse.
    let groups = [
        // Updates of the browser, its add-ons, search engines and media plug-ins.
        json!({
            "app.update.auto": false,
            "app.update.disabledForTesting": true,
            "app.update.checkInstallTime": false,
            "extensions.update.enabled": false,
            "extensions.getAddons.cache.enabled": false,
            "extensions.blocklist.enabled": false,
            "extensions.systemAddon.update.enabled": false,
            "browser.search.update": false,
            "media.gmp-manager.updateEnabled": false,
            "media.gmp-gmpopenh264.enabled": false,
            "media.gmp-widevinecdm.enabled": false,
        }),
        // Telemetry and data reporting.
        json!({
            "toolkit.telemetry.enabled": false,
            "toolkit.telemetry.unified": false,
            "toolkit.telemetry.archive.enabled": false,
            "toolkit.telemetry.server": "",
            "datareporting.healthreport.uploadEnabled": false,
            "datareporting.policy.dataSubmissionEnabled": false,
            "browser.ping-centre.telemetry": false,
            "browser.newtabpage.activity-stream.telemetry": false,
            "browser.newtabpage.activity-stream.feeds.telemetry": false,
        }),
        // Captive portal and connectivity detection.
        json!({
            "network.captive-portal-service.enabled": false,
            "network.connectivity-service.enabled": false,
            "captivedetect.canonicalURL": "",
        }),
        // Safe browsing lists.
        json!({
            "browser.safebrowsing.malware.enabled": false,
            "browser.safebrowsing.phishing.enabled": false,
            "browser.safebrowsing.blockedURIs.enabled": false,
            "browser.safebrowsing.downloads.enabled": false,
            "browser.safebrowsing.downloads.remote.enabled": false,
            "browser.safebrowsing.provider.google.updateURL": "",
            "browser.safebrowsing.provider.google4.updateURL": "",
            "browser.safebrowsing.provider.mozilla.updateURL": "",
        }),
        // Normandy, studies, experiments and remote settings.
        json!({
            "app.normandy.enabled": false,
            "app.normandy.api_url": "",
            "app.shield.optoutstudies.enabled": false,
            "messaging-system.rsexperimentloader.enabled": false,
            "services.settings.server": "data:,#remote-settings-dummy/v1",
        }),
        // Speculative connections, prefetching, DNS over HTTPS, OCSP.
        json!({
            "network.prefetch-next": false,
            "network.dns.disablePrefetch": true,
            "network.http.speculative-parallel-limit": 0,
            "browser.urlbar.speculativeConnect.enabled": false,
            "network.trr.mode": 5,
            "security.OCSP.enabled": 0,
            "network.proxy.type": 0,
        }),
        // Location and region lookups, push, accounts, new tab content, translations,
        // backups.
        json!({
            "geo.enabled": false,
            "geo.provider.network.url": "",
            "browser.region.network.url": "",
            "browser.region.update.enabled": false,
            "dom.push.connection.enabled": false,
            "dom.push.serverURL": "",
            "identity.fxaccounts.enabled": false,
            "extensions.pocket.enabled": false,
            "browser.newtabpage.enabled": false,
            "browser.newtabpage.activity-stream.feeds.topsites": false,
            "browser.newtabpage.activity-stream.feeds.section.topstories": false,
            "browser.topsites.contile.enabled": false,
            "browser.startup.homepage": "about:blank",
            "browser.startup.page": 0,
            "browser.discovery.enabled": false,
            "browser.translations.enable": false,
            "browser.ml.enable": false,
            "browser.backup.scheduled.enabled": false,
        }),
    ];
    let mut prefs = serde_json::Map::new();
    for group in groups {
        if let Value::Object(group) = group {
            prefs.extend(group);
        }
    }
    Value::Object(prefs)
}

/// A WebDriver server in its own process group, so that dropping it stops the browser it
/// started too, even after a panic left the session open.
struct Driver(Child);

impl Driver {
    fn spawn(mut command: Command) -> Self {
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        Self(child)
    }
}

impl Drop for Driver {
    /// Kills the whole group the driver leads (the browser and its helper processes included).
    ///
    /// The group is named after `--`: procps-ng 4.0's `kill -KILL -12345` reads `-12345` as
    /// `-1` and kills every process the user may signal (it once took a whole CI run down).
    fn drop(&mut self) {
        let group = self.0.id();
        if group > 1 {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless browser session through its WebDriver server on a free loopback port.
struct Browser {
    client: Client,
    // Dropped after `client`: kills the driver's process group.
    driver: Driver,
}

impl Browser {
    /// Starts `engine` with a fresh profile under `dir`.
    async fn start(engine: Engine, dir: &Path) -> Self {
        let port = free_port();
        let mut caps = serde_json::Map::new();
        let driver = match engine {
            Engine::Chromium => {
                let driver_bin = engine.require("chromedriver");
                let chromium = engine.require("chromium");
                let mut command = Command::new(driver_bin);
                command.args([
                    format!("--port={port}"),
                    "--allowed-ips=127.0.0.1".to_string(),
                ]);
                caps.insert(
                    "goog:chromeOptions".to_string(),
                    json!({
                        "binary": chromium,
                        "args": [
                            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync",
                            "--disable-dev-shm-usage", "--disable-breakpad", "--window-size=1366,900",
                            format!("--user-data-dir={}", dir.join("chromium-profile").display()),
                        ],
                    }),
                );
                Driver::spawn(command)
            }
            Engine::Firefox => {
                let driver_bin = engine.require("geckodriver");
                let firefox = engine.require("firefox-esr");
                // geckodriver makes a new profile for the session in this folder (and the
                // test's temporary folder removes it even when the driver was killed).
                let profiles = dir.join("firefox-profiles");
                std::fs::create_dir_all(&profiles).expect("firefox profiles folder");
                let mut command = Command::new(driver_bin);
                command
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .arg("--profile-root")
                    .arg(&profiles)
                    .env("MOZ_CRASHREPORTER_DISABLE", "1")
                    // Release builds ignore `services.settings.server` (in the preferences)
                    // without it, and look the remote settings server up at start.
                    .env("MOZ_REMOTE_SETTINGS_DEVTOOLS", "1");
                caps.insert(
                    "moz:firefoxOptions".to_string(),
                    json!({
                        "binary": firefox,
                        "args": ["-headless"],
                        "prefs": firefox_prefs(),
                    }),
                );
                Driver::spawn(command)
            }
        };
        let url = format!("http://127.0.0.1:{port}");
        wait_for(STEP, &format!("{} to listen", engine.name()), || {
            let addr = format!("127.0.0.1:{port}");
            async move { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) }
        })
        .await;
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("a {} session through its driver: {e}", engine.name()));
        if engine == Engine::Firefox {
            client
                .set_window_size(1366, 900)
                .await
                .expect("size the window");
        }
        Self { client, driver }
    }

    /// Ends the session, stops the driver's process group, and checks that none of its
    /// processes (the browser's included) is left.
    async fn quit(self) {
        let group = self.driver.0.id();
        self.client
            .clone()
            .close()
            .await
            .expect("close the browser");
        drop(self);
        wait_for(STEP, "the browser's processes to be gone", || async move {
            // Signal 0 only asks whether any process of the group is still there.
            let alive = Command::new("kill")
                .args(["-s", "0", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            (!alive).then_some(())
        })
        .await;
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    async fn css(&self, selector: &str) -> Element {
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

    /// The current value of a form control.
    async fn value(&self, selector: &str) -> String {
        self.css(selector)
            .await
            .prop("value")
            .await
            .expect("element value")
            .unwrap_or_default()
    }

    async fn fill(&self, selector: &str, value: &str) {
        let input = self.css(selector).await;
        input.clear().await.expect("clear");
        input.send_keys(value).await.expect("type");
    }

    /// Clicks the element matching `selector`, again if the page redrew it in between (the
    /// connectors list redraws every few seconds).
    async fn click(&self, selector: &str) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            match self.css(selector).await.click().await {
                Ok(()) => return,
                Err(e) if redrawn(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("click {selector}: {e}"),
            }
        }
    }

    async fn screenshot(&self, dir: &Path, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("save screenshot");
    }

    async fn script(&self, js: &str) -> Value {
        self.client.execute(js, vec![]).await.expect("run script")
    }
}

/// Whether a WebDriver error means the element went away or was covered while the page redrew.
fn redrawn(e: &CmdError) -> bool {
    e.is_stale_element_reference()
        || e.is_element_not_interactable()
        || {
            matches!(e, CmdError::Standard(w) if w.error == fantoccini::error::ErrorStatus::ElementClickIntercepted)
        }
}

#[tokio::test(flavor = "multi_thread")]
async fn console_pages_in_chromium() {
    console_pages(Engine::Chromium).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_pages_in_firefox() {
    console_pages(Engine::Firefox).await;
}

/// The steps every browser goes through, with one worker and one session.
async fn console_pages(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let shots = std::env::var_os("CONSOLE_TEST_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("screenshots"))
        .join(engine.name());
    std::fs::create_dir_all(&shots).unwrap();
    // Source offsets written within moments, for the offsets step.
    let worker = WorkerProcess::start(
        WorkerOptions::new(dir.path()).env("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "200"),
    )
    .await;
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
    let browser = Browser::start(engine, dir.path()).await;
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

    // Edit a connector's config as JSON: Save stays off until the diff has been shown, and the
    // saved change is what the REST API answers.
    browser.goto(&format!("{ui}#/connector/tolerant")).await;
    browser.click("#config-edit").await;
    let shown: Value = serde_json::from_str(&browser.value("#config-editor").await)
        .expect("the editor holds the config as JSON");
    assert_eq!(shown["file"], "sink.txt", "{shown}");
    let mut edited = shown.clone();
    edited["file"] = json!("sink-edited.txt");
    browser
        .fill("#config-editor", &serde_json::to_string(&edited).unwrap())
        .await;
    assert!(
        !browser
            .css("#config-save")
            .await
            .is_enabled()
            .await
            .unwrap(),
        "Save waits until the changes were reviewed"
    );
    browser.click("#config-review").await;
    let diff = browser
        .text_where("#config-diff", "the config diff", |t| !t.is_empty())
        .await;
    assert_eq!(diff, "~ file: sink.txt → sink-edited.txt");
    browser
        .script("document.getElementById('config-diff').scrollIntoView({block: 'center'}); return null;")
        .await;
    browser.screenshot(&shots, "config-diff").await;
    browser.click("#config-save").await;
    browser
        .text_where(
            "#config-outcome",
            "the note that the config was saved",
            |t| t == "Saved.",
        )
        .await;
    let config = worker.get("/connectors/tolerant/config").await;
    assert_eq!(config["file"], "sink-edited.txt", "{config}");
    assert_eq!(config["topics"], "raw", "the other options stay: {config}");
    assert!(browser.text("#config").await.contains("sink-edited.txt"));

    // New connector from a file: a connector JSON in Kafka Connect's shape, naming Kafka's
    // class, fills the form; creating it runs it.
    std::fs::write(dir.path().join("lines.txt"), "one\ntwo\nthree\n").unwrap();
    let import = dir.path().join("imported.json");
    let imported = json!({"name": "imported", "config": {
        "connector.class": "FileStreamSource",
        "file": "lines.txt",
        "topic": "lines",
        "value.converter": "string",
    }});
    std::fs::write(&import, serde_json::to_vec_pretty(&imported).unwrap()).unwrap();
    browser.goto(&format!("{ui}#/new")).await;
    browser.css("#plugin option[value]").await;
    browser
        .css("#import")
        .await
        .send_keys(import.to_str().unwrap())
        .await
        .expect("choose the file to import");
    browser
        .text_where("#import + .outcome", "the import's outcome", |t| {
            t == "imported imported.json"
        })
        .await;
    browser
        .text_where("#error-count", "the imported connector to validate", |t| {
            t == "Valid"
        })
        .await;
    assert_eq!(browser.value("#connector-name").await, "imported");
    assert_eq!(browser.value("input[name='file']").await, "lines.txt");
    assert_eq!(browser.value("input[name='topic']").await, "lines");
    assert_eq!(
        browser.value("input[name='value.converter']").await,
        "string"
    );
    browser.click("#create").await;
    browser.css("#connector-state [data-state='RUNNING']").await;
    let config = worker.get("/connectors/imported/config").await;
    for key in ["file", "topic", "value.converter"] {
        assert_eq!(config[key], imported["config"][key], "{key}: {config}");
    }
    let lines = read_lines_topic(&bootstrap, 3).await;
    assert_eq!(lines, ["one", "two", "three"]);

    // Offsets of a STOPPED connector reset from its page: the REST API has none left, and the
    // source reads its file again from the start once resumed (the bulk resume below).
    let worker_ref = &worker;
    wait_for(STEP, "the file source's offsets", || async move {
        let offsets = worker_ref.get("/connectors/imported/offsets").await;
        offsets["offsets"]
            .as_array()
            .is_some_and(|o| !o.is_empty())
            .then_some(())
    })
    .await;
    assert!(
        browser.text("#offsets").await.contains("lines.txt"),
        "the page shows the file's offset"
    );
    browser.click("[data-action='stop']").await;
    browser.css("#connector-state [data-state='STOPPED']").await;
    wait_for_state(&worker, "imported", "STOPPED").await;
    browser.click("#offsets-reset").await;
    browser
        .text_where(
            "#offsets-outcome",
            "the note that offsets were reset",
            |t| t == "Offsets reset.",
        )
        .await;
    assert_eq!(
        worker.get("/connectors/imported/offsets").await,
        json!({"offsets": []})
    );
    let shown: Value = serde_json::from_str(&browser.text("#offsets").await).unwrap();
    assert_eq!(shown, json!({"offsets": []}));

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

    // Bulk actions on two selected connectors, one PAUSED and one STOPPED: resume, restart
    // and stop both, each seen through the REST API.
    let imported_row = "#connectors tr[data-connector='imported']";
    browser
        .css(&format!("{imported_row} [data-state='STOPPED']"))
        .await;
    browser
        .click(&format!("{imported_row} input[type='checkbox']"))
        .await;
    wait_for(STEP, "two selected rows", || async {
        let n = browser
            .script("return document.querySelectorAll('#connectors tr.selected').length;")
            .await;
        (n == json!(2)).then_some(())
    })
    .await;
    bulk(&browser, "resume", "Resume: sent for 2").await;
    for name in ["tolerant", "imported"] {
        wait_for_state(&worker, name, "RUNNING").await;
        browser
            .css(&format!(
                "#connectors tr[data-connector='{name}'] [data-state='RUNNING']"
            ))
            .await;
    }
    let lines = read_lines_topic(&bootstrap, 6).await;
    assert_eq!(
        lines,
        ["one", "two", "three", "one", "two", "three"],
        "after the reset the source read its file again"
    );

    let starts = |text: &str| {
        [
            "kafka_connect_connect_worker_metrics_connector_startup_attempts_total",
            "kafka_connect_connect_worker_metrics_task_startup_attempts_total",
        ]
        .map(|m| metric_sample(text, m, &[]).unwrap_or_else(|| panic!("{m} in /metrics")))
    };
    let before = starts(&worker.metrics_text().await);
    bulk(&browser, "restart", "Restart: sent for 2").await;
    wait_for(STEP, "two connector and two task starts", || async {
        let now = starts(&worker_ref.metrics_text().await);
        (now[0] >= before[0] + 2.0 && now[1] >= before[1] + 2.0).then_some(())
    })
    .await;
    for name in ["tolerant", "imported"] {
        wait_for_state(&worker, name, "RUNNING").await;
    }

    bulk(&browser, "stop", "Stop: sent for 2").await;
    for name in ["tolerant", "imported"] {
        wait_for_state(&worker, name, "STOPPED").await;
        browser
            .css(&format!(
                "#connectors tr[data-connector='{name}'] [data-state='STOPPED']"
            ))
            .await;
    }

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
    browser.quit().await;
}

/// Clicks the connectors list's bulk button `action` and waits for the outcome beside it.
async fn bulk(browser: &Browser, action: &str, outcome: &str) {
    let button = format!("[data-bulk='{action}']");
    browser.click(&button).await;
    browser
        .text_where(
            &format!("{button} + .outcome"),
            &format!("the outcome of {action}"),
            |t| t == outcome,
        )
        .await;
}

/// Waits until the REST API reports connector `name` in `state` (and, when RUNNING, each of
/// its tasks too).
async fn wait_for_state(worker: &WorkerProcess, name: &str, state: &str) {
    wait_for(STEP, &format!("{name} to be {state}"), || async move {
        let status = worker.get(&format!("/connectors/{name}/status")).await;
        let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
        let tasks_ok = state != "RUNNING"
            || (!tasks.is_empty() && tasks.iter().all(|t| t["state"] == "RUNNING"));
        (status["connector"]["state"] == state && tasks_ok).then_some(())
    })
    .await;
}

/// The values of the `lines` topic once it holds `count` records.
async fn read_lines_topic(bootstrap: &str, count: usize) -> Vec<String> {
    let bootstrap = bootstrap.to_string();
    let records = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "lines", count, Duration::from_secs(30))
    })
    .await
    .unwrap();
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}
