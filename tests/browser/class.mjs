// The class report as an instructor opens it: a small class graded by the
// real checker (`grade --also html=DIR/`), the site opened from disk in
// headless Chromium (Debian's /usr/bin/chromium) by playwright-core.
//
// It fails on a missing section, a broken link or a console error, never on
// pixels; the screenshots (target/browser-screenshots/class-*.png, or under
// $CONCLAB_SCREENSHOTS) show the pages for a person to look at.
//
// Run by scripts/test after the build: `node tests/browser/class.mjs`.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHOTS = process.env.CONCLAB_SCREENSHOTS || path.join(ROOT, 'target', 'browser-screenshots');
const CHROMIUM = process.env.CONCLAB_CHROMIUM || '/usr/bin/chromium';
const CHECK = process.env.CONCLAB_CHECK || path.join(ROOT, 'target', 'debug', 'conclab-check');
const NOTEBOOK = '07-semaphores.ipynb';

class Failure extends Error {}

function log(message) {
    process.stderr.write(`class report: ${message}\n`);
}

/** The source notebook with `from` replaced by `to` in the cell `gradeId`. */
function withMistake(gradeId, from, to) {
    const notebook = JSON.parse(readFileSync(path.join(ROOT, 'notebooks', NOTEBOOK), 'utf8'));
    const cell = notebook.cells.find((c) => c.metadata?.nbgrader?.grade_id === gradeId);
    const source = Array.isArray(cell.source) ? cell.source.join('') : cell.source;
    if (!source.includes(from)) {
        throw new Failure(`${gradeId} no longer contains ${JSON.stringify(from)}: update the mistake`);
    }
    cell.source = source.replace(from, to);
    return JSON.stringify(notebook);
}

/** Five learners, each failing (or not) in their own way. */
function writeClass(dir) {
    const released = path.join(dir, 'released');
    execFileSync(CHECK, ['release', path.join(ROOT, 'notebooks', NOTEBOOK), '--output', released]);
    const learners = {
        // The reference solution: every point.
        ada: readFileSync(path.join(ROOT, 'notebooks', NOTEBOOK), 'utf8'),
        // A permit given back without waking anyone: waiters sleep forever.
        bob: withMistake('step07-semaphore', '        self.semaphore.released.notify_one();\n', ''),
        // The permit is dropped at once: no limit at all.
        cy: withMistake('step07-limited-downloads', 'let _permit = semaphore.acquire();', 'let _ = semaphore.acquire();'),
        // Nothing done: the learner version as released.
        dee: readFileSync(path.join(released, NOTEBOOK), 'utf8'),
        // A file that is not a notebook.
        eve: '{ this is not JSON',
    };
    const files = [];
    for (const [name, text] of Object.entries(learners)) {
        mkdirSync(path.join(dir, 'class', name), { recursive: true });
        const file = path.join(dir, 'class', name, NOTEBOOK);
        writeFileSync(file, text);
        files.push(file);
    }
    return path.join(dir, 'class');
}

function grade(dir, classDir) {
    const site = path.join(dir, 'site');
    const started = Date.now();
    const run = spawnSync(CHECK, [
        'grade', '--source', path.join(ROOT, 'notebooks', NOTEBOOK), classDir,
        '--format', 'json', '--output', path.join(dir, 'report.json'),
        '--also', `html=${site}/`, '--also', `csv=${path.join(dir, 'grades.csv')}`,
    ], { encoding: 'utf8' });
    log(`graded the class in ${((Date.now() - started) / 1000).toFixed(1)} s, exit ${run.status}`);
    // Exit 2: eve's file cannot be read, and the others are graded.
    if (run.status !== 2) {
        throw new Failure(`conclab-check grade exited ${run.status}, expected 2:\n${run.stderr}`);
    }
    return site;
}

async function expectVisible(page, selector, what) {
    const count = await page.locator(selector).count();
    if (count === 0) {
        throw new Failure(`${what} is missing (${selector}) on ${page.url()}`);
    }
    await page.locator(selector).first().waitFor({ state: 'visible', timeout: 5000 }).catch(() => {
        throw new Failure(`${what} is not visible (${selector}) on ${page.url()}`);
    });
}

async function expectText(page, selector, text, what) {
    const shown = await page.locator(selector).innerText();
    if (!shown.includes(text)) {
        throw new Failure(`${what}: ${JSON.stringify(text)} is not in ${selector}:\n${shown}`);
    }
}

async function scenario(page, site) {
    await page.goto(pathToFileURL(path.join(site, 'index.html')).href);
    await expectVisible(page, '#distribution svg.histogram rect', 'the score histogram');
    await expectVisible(page, '#exercises table', 'the pass rate per exercise');
    await expectText(page, '#exercises', 'step07-semaphore', 'the exercises');
    await expectText(page, '#exercises', 'step07-limited-downloads', 'the exercises');
    await expectText(page, '#failures', 'Lost wake-up', 'bob\'s semaphore');
    await expectText(page, '#failures', 'A limit broken', 'cy\'s downloads');
    await expectText(page, '#failures', 'Not attempted', 'dee\'s todo!()s');
    await expectText(page, '#failures', 'could not be read', 'eve\'s file');
    // An unreadable file earns nothing of the points at stake, not 0 of 0.
    await expectText(page, '#learners tr:has-text("eve")', '0 / 11', 'eve\'s points');
    await expectText(page, '#learners', 'ada', 'the learners');
    await expectText(page, '#learners', 'eve', 'the learners');
    await page.screenshot({ path: path.join(SHOTS, 'class-index.png'), fullPage: true });

    // Every link on the index leads to a page, and every #anchor to an element.
    const links = await page.locator('a[href^="learners/"]').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    for (const href of new Set(links)) {
        const [file, anchor] = href.split('#');
        const html = readFileSync(path.join(site, file), 'utf8');
        if (anchor && !html.includes(`id="${anchor}"`)) {
            throw new Failure(`the index links to ${href}, which has no element with that id`);
        }
    }

    // A learner's failure, followed from the index: the learner's feedback.
    await page.locator('#failures a', { hasText: 'bob' }).first().click();
    await page.waitForURL(/learners\/bob\.html#check-/);
    await expectVisible(page, '.conclab-summary', 'bob\'s summary line');
    await expectVisible(page, '.conclab-failure:target', 'the failure the link pointed at');
    await expectVisible(page, '.conclab-failure svg.conclab-timeline', 'the timeline of the run that hung');
    await expectVisible(page, 'details.conclab-evidence', 'the folded evidence');
    await page.screenshot({ path: path.join(SHOTS, 'class-learner.png'), fullPage: true });
    await page.locator('nav a').click();
    await page.waitForURL(/index\.html$/);
}

async function main() {
    mkdirSync(SHOTS, { recursive: true });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'conclab-class-'));
    const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    const consoleErrors = [];
    const requests = [];
    try {
        const site = grade(dir, writeClass(dir));
        const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
        page.on('console', (message) => {
            if (message.type() === 'error') consoleErrors.push(message.text());
        });
        page.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.message}`));
        // Opened from disk, the site must ask for nothing but its own pages.
        page.on('request', (request) => {
            if (!request.url().startsWith('file://')) requests.push(request.url());
        });
        await scenario(page, site);
        if (consoleErrors.length > 0) {
            throw new Failure(`the pages logged ${consoleErrors.length} console error(s):\n${consoleErrors.join('\n')}`);
        }
        if (requests.length > 0) {
            throw new Failure(`the pages fetched from outside:\n${requests.join('\n')}`);
        }
        log(`passed; screenshots in ${path.relative(ROOT, SHOTS)}/class-*.png`);
    } finally {
        await browser.close().catch(() => {});
        rmSync(dir, { recursive: true, force: true });
    }
}

main().catch((error) => {
    log(error instanceof Failure ? `FAILED: ${error.message}` : `FAILED: ${error.stack ?? error}`);
    process.exit(1);
});
