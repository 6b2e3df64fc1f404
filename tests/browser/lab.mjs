// The lab as a learner meets it: JupyterLab started by scripts/lab, driven in
// headless Chromium (Debian's /usr/bin/chromium) by playwright-core.
//
// It fails on a missing element or a console error, never on pixels; the
// screenshots it takes (target/browser-screenshots/, or $CONCLAB_SCREENSHOTS)
// show each state for a person to look at.
//
// Run by scripts/test after the build: `node tests/browser/lab.mjs`.

import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync, openSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHOTS = process.env.CONCLAB_SCREENSHOTS || path.join(ROOT, 'target', 'browser-screenshots');
const CHROMIUM = process.env.CONCLAB_CHROMIUM || '/usr/bin/chromium';
// The lab's first start may build the workspace; every later wait is short.
const LAB_START_MS = 30 * 60 * 1000;
const CELL_MS = 3 * 60 * 1000;
// What the issue promises a learner: an interrupted cell gives the kernel back at once.
const INTERRUPT_IDLE_MS = 2000;

/** Every failure message, with what the page logged, then a non-zero exit. */
class Failure extends Error {}

function log(message) {
    process.stderr.write(`browser: ${message}\n`);
}

async function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

/** Settings outside the repository: autosave off, no news or update checks (no network here). */
function writeSettings(dir) {
    const put = (plugin, file, value) => {
        const folder = path.join(dir, plugin);
        mkdirSync(folder, { recursive: true });
        writeFileSync(path.join(folder, file), JSON.stringify(value, null, 1));
    };
    put('@jupyterlab/docmanager-extension', 'plugin.jupyterlab-settings', { autosave: false });
    // Every cell in the page, so the test sees each cell's prompt and output.
    put('@jupyterlab/notebook-extension', 'tracker.jupyterlab-settings', { windowingMode: 'none' });
    put('@jupyterlab/apputils-extension', 'notification.jupyterlab-settings', {
        checkForUpdates: false,
        fetchNews: 'false',
    });
}

/** JupyterLab as `scripts/lab` starts it, on a free loopback port, isolated in `home`. */
async function startLab(home) {
    const port = await freePort();
    const token = `conclab-${process.pid}-${Date.now()}`;
    writeSettings(path.join(home, 'settings'));
    const logFile = path.join(home, 'lab.log');
    const out = openSync(logFile, 'w');
    // CONCLAB_LAB: another command that takes scripts/lab's arguments (a lab already built).
    const lab = spawn(
        process.env.CONCLAB_LAB || path.join(ROOT, 'scripts', 'lab'),
        [
            '--no-browser',
            '--ip=127.0.0.1',
            `--port=${port}`,
            '--ServerApp.port_retries=0',
            `--IdentityProvider.token=${token}`,
            `--LabApp.user_settings_dir=${path.join(home, 'settings')}`,
            `--LabApp.workspaces_dir=${path.join(home, 'workspaces')}`,
            // Opening a notebook writes a checkpoint next to it; keep even that out of the repository.
            `--FileCheckpoints.checkpoint_dir=${path.join(home, 'checkpoints')}`,
        ],
        {
            env: {
                ...process.env,
                JUPYTER_CONFIG_DIR: path.join(home, 'config'),
                JUPYTER_DATA_DIR: path.join(home, 'data'),
                JUPYTER_RUNTIME_DIR: path.join(home, 'runtime'),
            },
            stdio: ['ignore', out, out],
            detached: true,
        },
    );
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + LAB_START_MS;
    while (Date.now() < deadline) {
        if (lab.exitCode !== null) {
            throw new Failure(`scripts/lab exited with ${lab.exitCode}:\n${tail(logFile)}`);
        }
        try {
            const response = await fetch(`${url}/api/status?token=${token}`);
            if (response.ok) {
                return { lab, url, token, logFile };
            }
        } catch {
            // Not listening yet.
        }
        await sleep(500);
    }
    throw new Failure(`JupyterLab did not answer on ${url} within ${LAB_START_MS / 1000}s:\n${tail(logFile)}`);
}

function stopLab(lab) {
    try {
        process.kill(-lab.pid, 'SIGTERM');
    } catch {
        // Already gone.
    }
}

function tail(file, lines = 40) {
    try {
        return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
        return '(no log)';
    }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The tracked notebooks' state, to prove the test wrote none of them. */
function notebooksStatus() {
    return execFileSync('git', ['status', '--porcelain', '--ignored', '--', 'notebooks'], {
        cwd: ROOT,
        encoding: 'utf8',
    });
}

/** One learner's session in one browser page. */
class Learner {
    constructor(page, lab) {
        this.page = page;
        this.lab = lab;
    }

    async shot(name) {
        const file = path.join(SHOTS, `${name}.png`);
        await this.page.screenshot({ path: file });
        log(`screenshot ${path.relative(ROOT, file)}`);
    }

    /** The notebook in the current tab. */
    notebook() {
        return this.page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)');
    }

    async open(file) {
        // ?reset: a workspace of this notebook alone, so `notebook()` is the only panel.
        log(`opening ${file}`);
        await this.page.goto(`${this.lab.url}/lab/tree/${file}?reset&token=${this.lab.token}`);
        await this.notebook().locator('.jp-Cell').first().waitFor({ timeout: 120_000 });
        // The panel shows "No Kernel" until its session has started the kernel.
        const name = this.notebook().locator('.jp-Toolbar-kernelName');
        const deadline = Date.now() + 120_000;
        while ((await name.innerText()).trim() === 'No Kernel' && Date.now() < deadline) {
            await sleep(100);
        }
        await this.waitIdle(120_000);
    }

    async kernelStatus() {
        return this.notebook().locator('.jp-Notebook-ExecutionIndicator').getAttribute('data-status');
    }

    async waitIdle(timeout = CELL_MS) {
        const deadline = Date.now() + timeout;
        while (Date.now() < deadline) {
            if ((await this.kernelStatus()) === 'idle') {
                return;
            }
            await sleep(100);
        }
        throw new Failure(`the kernel was not idle within ${timeout / 1000}s (status ${await this.kernelStatus()})`);
    }

    async expectKernelName(expected) {
        const name = (await this.notebook().locator('.jp-Toolbar-kernelName').innerText()).trim();
        if (name !== expected) {
            throw new Failure(`the notebook's kernel is "${name}", not "${expected}"`);
        }
    }

    async runAll() {
        log('Run > Run All Cells');
        await this.page.locator('.lm-MenuBar-itemLabel', { hasText: /^Run$/ }).click();
        await this.page.locator('.lm-Menu-itemLabel', { hasText: /^Run All Cells$/ }).click();
        await this.waitForPrompts();
    }

    /** Waits until no cell is running or queued, then checks every code cell ran. */
    async waitForPrompts() {
        const prompts = this.notebook().locator('.jp-CodeCell .jp-InputArea-prompt');
        const deadline = Date.now() + 10 * CELL_MS;
        await sleep(500);
        while (Date.now() < deadline) {
            const texts = await prompts.allInnerTexts();
            if (!texts.some((t) => t.includes('*')) && (await this.kernelStatus()) === 'idle') {
                const unrun = texts.filter((t) => !/\[\d+\]/.test(t)).length;
                if (unrun > 0) {
                    throw new Failure(`Run All stopped: ${unrun} of ${texts.length} code cells did not run`);
                }
                return;
            }
            await sleep(250);
        }
        throw new Failure('Run All did not finish');
    }

    /** The code cell whose source starts with `prefix`. */
    cellStartingWith(prefix) {
        return this.notebook()
            .locator('.jp-CodeCell')
            .filter({ has: this.page.locator('.cm-content', { hasText: prefix }) })
            .first();
    }

    /** Replaces a cell's source as a learner's edit would. */
    async setSource(cell, source) {
        await cell.locator('.cm-content').click();
        await this.page.keyboard.press('Control+A');
        await this.page.keyboard.press('Delete');
        await this.page.keyboard.insertText(source);
    }

    /** Appends a code cell with `source` below the last one and runs it. */
    async runNewCell(source) {
        const cells = this.notebook().locator('.jp-Cell');
        const count = await cells.count();
        const last = cells.last();
        // Shift+Enter on the last cell leaves an empty one below it: write there.
        const lastIsEmpty =
            (await last.evaluate((c) => c.classList.contains('jp-CodeCell'))) &&
            (await last.locator('.cm-content').innerText()).trim() === '';
        // By index: `last()` would follow the empty cell Shift+Enter adds.
        let cell = cells.nth(count - 1);
        if (!lastIsEmpty) {
            await last.locator('.jp-InputArea-prompt').click();
            await this.page.keyboard.press('Escape');
            await this.page.keyboard.press('b');
            cell = cells.nth(count);
            await cell.waitFor({ timeout: 10_000 });
        }
        await cell.locator('.cm-content').click();
        await this.page.keyboard.insertText(source);
        await this.page.keyboard.press('Shift+Enter');
        return cell;
    }

    async runCell(cell) {
        await cell.locator('.cm-content').click();
        await this.page.keyboard.press('Shift+Enter');
    }

    async waitForOutput(cell, selector, what, timeout = CELL_MS) {
        try {
            await cell.locator(selector).first().waitFor({ timeout });
        } catch {
            const text = await cell.locator('.jp-OutputArea').innerText().catch(() => '');
            throw new Failure(`${what}: no ${selector} within ${timeout / 1000}s; the cell shows:\n${text}`);
        }
        return cell.locator(selector).first();
    }

    async toolbar(command) {
        const button = this.notebook().locator(`.jp-NotebookPanel-toolbar [data-command="${command}"]`);
        await button.click();
    }
}

async function main() {
    mkdirSync(SHOTS, { recursive: true });
    const home = mkdtempSync(path.join(os.tmpdir(), 'conclab-browser-'));
    const before = notebooksStatus();
    const lab = await startLab(home);
    log(`JupyterLab is up on ${lab.url}`);
    const context = await chromium.launchPersistentContext(path.join(home, 'chromium-profile'), {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 1280, height: 900 },
        args: [
            '--headless=new',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
        ],
    });
    const consoleErrors = [];
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (message) => {
        if (message.type() === 'error') {
            consoleErrors.push(`${message.text()} (${message.location().url})`);
        }
    });
    page.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.message}`));
    const learner = new Learner(page, lab);
    try {
        await scenario(learner);
        if (consoleErrors.length > 0) {
            throw new Failure(`the page logged ${consoleErrors.length} console error(s):\n${consoleErrors.join('\n')}`);
        }
        const after = notebooksStatus();
        if (after !== before) {
            throw new Failure(`the test wrote into notebooks/:\n${after}`);
        }
        log(`passed; screenshots in ${path.relative(ROOT, SHOTS)}/`);
    } catch (error) {
        await learner.shot('failure').catch(() => {});
        if (consoleErrors.length > 0) {
            log(`console errors:\n${consoleErrors.join('\n')}`);
        }
        log(`JupyterLab's log ends:\n${tail(lab.logFile)}`);
        copyFileSync(lab.logFile, path.join(SHOTS, 'lab.log'));
        log(`its whole log: ${path.relative(ROOT, path.join(SHOTS, 'lab.log'))}`);
        throw error;
    } finally {
        await context.close().catch(() => {});
        stopLab(lab.lab);
        rmSync(home, { recursive: true, force: true });
    }
}

/** What a learner does, in order; each step names what it expected when it fails. */
async function scenario(learner) {
    const { page } = learner;

    // Step 1: the kernel, a stored picture, Run All, a passing :check.
    await learner.open('01-cpu-bound-pool.ipynb');
    await learner.expectKernelName('Rust (conclab)');
    const picture = learner.notebook().locator('.jp-OutputArea-output img[src^="data:image/png"]').first();
    try {
        await picture.waitFor({ timeout: 10_000 });
    } catch {
        throw new Failure("01-cpu-bound-pool.ipynb's stored timeline is not rendered as a picture (no PNG output)");
    }
    await picture.scrollIntoViewIfNeeded();
    const box = await picture.boundingBox();
    if (!box || box.width < 100 || box.height < 30) {
        throw new Failure(`the stored timeline is rendered ${JSON.stringify(box)}: too small to read`);
    }
    await learner.shot('01-stored-picture');

    await learner.runAll();
    await learner.shot('02-run-all');
    const passing = await learner.runNewCell(':check');
    const summary = await learner.waitForOutput(passing, '.conclab-summary', ':check on a solved step 1');
    if ((await passing.locator('.conclab-failure').count()) > 0) {
        throw new Failure(`:check on the reference solutions reports a failure:\n${await passing.innerText()}`);
    }
    log(`:check says: ${(await summary.innerText()).trim()}`);
    await summary.scrollIntoViewIfNeeded();
    await learner.shot('03-check-passing');

    // Step 7: a semaphore that never wakes a waiter, and :check's folded evidence.
    await learner.open('07-semaphores.ipynb');
    const notebook = JSON.parse(readFileSync(path.join(ROOT, 'notebooks', '07-semaphores.ipynb'), 'utf8'));
    const solution = notebook.cells.find((c) => c.metadata?.nbgrader?.grade_id === 'step07-semaphore');
    const source = solution.source.join('');
    const broken = source.replace(/^\s*self\.semaphore\.released\.notify_one\(\);\s*$/m, '');
    if (broken === source) {
        throw new Failure("07-semaphores.ipynb's Semaphore no longer wakes a waiter with notify_one: update the test");
    }
    const cell = learner.cellStartingWith('pub struct Semaphore');
    await learner.setSource(cell, broken);
    await learner.runCell(cell);
    await learner.waitIdle();
    const failing = await learner.runNewCell(':check step07-semaphore');
    const failure = await learner.waitForOutput(failing, '.conclab-failure', ':check on a semaphore that never notifies');
    await learner.waitForOutput(failing, 'details.conclab-evidence', 'the failure');
    const evidence = failing.locator('details.conclab-evidence').first();
    await evidence.locator('summary').click();
    await failure.scrollIntoViewIfNeeded();
    await learner.shot('04-check-failing');
    await learner.waitIdle();

    // A deadlock, the toolbar's interrupt, and the kernel usable again.
    const deadlock = await learner.runNewCell(
        [
            '{',
            'let a = std::sync::Arc::new(std::sync::Mutex::new(0));',
            'let b = std::sync::Arc::new(std::sync::Mutex::new(0));',
            'let (a2, b2) = (a.clone(), b.clone());',
            'let _guard_a = a.lock().unwrap();',
            'let t = std::thread::spawn(move || { let _b = b2.lock().unwrap(); let _a = a2.lock().unwrap(); });',
            'std::thread::sleep(std::time::Duration::from_millis(100));',
            'println!("both threads now wait for each other");',
            'let _guard_b = b.lock().unwrap();',
            't.join().unwrap();',
            '}',
        ].join('\n'),
    );
    // Printed just before the cell's last lock: from then on it waits for ever.
    await learner.waitForOutput(deadlock, '.jp-OutputArea-output', 'the deadlocking cell');
    await sleep(1000);
    if ((await learner.kernelStatus()) !== 'busy') {
        throw new Failure(`the deadlocking cell is not running (kernel ${await learner.kernelStatus()}):\n${await deadlock.innerText()}`);
    }
    await learner.shot('05-deadlock-running');
    const pressed = Date.now();
    await learner.toolbar('notebook:interrupt-kernel');
    await learner.waitIdle(INTERRUPT_IDLE_MS + 3000);
    const idleAfter = Date.now() - pressed;
    log(`interrupt: kernel idle ${idleAfter} ms after the click`);
    if (idleAfter > INTERRUPT_IDLE_MS) {
        throw new Failure(`the kernel was idle ${idleAfter} ms after interrupt, not within ${INTERRUPT_IDLE_MS} ms`);
    }
    const usable = await learner.runNewCell('40 + 2');
    const answer = await learner.waitForOutput(usable, '.jp-OutputArea-output', 'a cell after the interrupt', 60_000);
    if (!(await answer.innerText()).includes('42')) {
        throw new Failure(`after the interrupt, 40 + 2 shows ${await answer.innerText()}`);
    }
    await learner.shot('06-interrupted');

    // Restart, and the kernel answers again.
    await learner.toolbar('notebook:restart-kernel');
    await page.locator('.jp-Dialog .jp-mod-accept').click();
    await sleep(500);
    await learner.waitIdle(120_000);
    const restarted = await learner.runNewCell('println!("restarted");');
    await learner.waitForOutput(restarted, '.jp-OutputArea-output', 'a cell after the restart', 120_000);
    await learner.shot('07-restarted');
}

main().catch((error) => {
    log(error instanceof Failure ? `FAILED: ${error.message}` : `FAILED: ${error.stack ?? error}`);
    process.exit(1);
});
