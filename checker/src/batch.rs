//! Grading many submissions: which notebooks to run for each, running them
//! in parallel (a submission's notebooks one after another on each of its
//! kernels, see [`crate::lanes`]), writing each submission's result as soon
//! as it is done, and picking up finished ones on a rerun.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::exit::Failure;
use crate::grading::{Mode, Settings};
use crate::lanes;
use crate::notebook::{self, BadNotebook, Notebook};
use crate::plan::{self, Step};
use crate::report::{Check, CheckKind, NotebookReport, Outcome, Report, SubmissionReport};
use crate::run_options::{self, RunOptions};

/// What `grade` is asked to grade.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The source notebook, or a folder of them: the only trusted input.
    pub source: PathBuf,
    /// Notebooks, learners' folders of notebooks, or folders holding one of
    /// those per learner (see [`submissions`]).
    pub submissions: Vec<PathBuf>,
    /// Only this slice of the batch; None for all of it.
    pub shard: Option<Shard>,
    /// Where each submission's result is kept as soon as it is done (see
    /// [`ResultStore`]); None to keep none.
    pub results: Option<PathBuf>,
}

impl Batch {
    /// Grades the batch (its shard) against its source, as `grade` does,
    /// with a progress bar when stderr is a terminal.
    pub fn grade(&self, options: &RunOptions) -> Result<Report, Failure> {
        let source = Arc::new(Source::read(&self.source)?);
        let mut submissions = submissions(&self.submissions)?;
        if let Some(shard) = self.shard {
            submissions = shard.select(submissions);
        }
        let store = self
            .results
            .as_deref()
            .map(ResultStore::open)
            .transpose()
            .map_err(Failure::Infrastructure)?;
        let settings = Arc::new(options.settings(Mode::Grade));
        let progress = progress_bar(submissions.len());
        let runtime = run_options::runtime()?;
        let reports = runtime.block_on(grade(
            source,
            submissions,
            settings,
            options.jobs(),
            store,
            progress,
        ));
        let mut report = Report::new("grade");
        report.submissions = reports;
        Ok(report)
    }
}

/// A progress bar on a terminal; nothing otherwise (CI logs stay clean).
fn progress_bar(total: usize) -> Progress {
    if !std::io::stderr().is_terminal() || total < 2 {
        return Box::new(|_, _, _| {});
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} graded, {eta} left  {msg}")
            .expect("a valid template"),
    );
    Box::new(move |done, _, report| {
        let (score, max) = report.score();
        bar.set_message(format!("{}: {score}/{max}", report.submission));
        bar.set_position(done as u64);
        if done as u64 == bar.length().unwrap_or(0) {
            bar.finish_and_clear();
        }
    })
}

/// One submission: a notebook, or one learner's folder of notebooks.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Its file or folder name.
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
}

/// The submissions named on the command line, sorted by path: a notebook is
/// one; a folder with notebooks in it is one learner's; a folder of folders
/// (a class) holds one per entry.
pub fn submissions(paths: &[PathBuf]) -> Result<Vec<Submission>, BadNotebook> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_file() || has_notebooks(path) {
            found.push(path.clone());
        } else if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| BadNotebook {
                path: path.clone(),
                problem: format!("cannot read it: {e}"),
            })?;
            let mut inside: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() || p.extension().is_some_and(|x| x == "ipynb"))
                .collect();
            inside.sort();
            if inside.is_empty() {
                return Err(BadNotebook {
                    path: path.clone(),
                    problem: "no notebooks and no submission folders in it".into(),
                });
            }
            found.extend(inside);
        } else {
            return Err(BadNotebook {
                path: path.clone(),
                problem: "no such file or folder".into(),
            });
        }
    }
    found.sort();
    found.dedup();
    Ok(found
        .into_iter()
        .map(|path| Submission {
            name: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            path,
        })
        .collect())
}

fn has_notebooks(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "ipynb"))
    })
}

/// `I/N`: the I-th (from 0) of N fixed slices of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, from 0.
    pub index: usize,
    /// How many slices.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not I/N (e.g. 0/4)"))?;
        let index: usize = index
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: I is not a number"))?;
        let count: usize = count
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: N is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("{text:?}: I must be at least 0 and less than N"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Keeps this shard's submissions: every N-th, from the I-th, of the
    /// sorted batch, so shards are disjoint, cover the batch and stay
    /// balanced.
    pub fn select<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, item)| item)
            .collect()
    }
}

/// The source notebooks, read once.
pub struct Source {
    /// Each, as grading needs it.
    pub notebooks: Vec<SourceNotebook>,
    /// A digest of their content: a stored result is reused only for the
    /// same source.
    pub digest: String,
}

/// One source notebook, and what grading needs to know of it before any run.
pub struct SourceNotebook {
    /// The notebook.
    pub notebook: Notebook,
    /// Its solution cells' grade_ids.
    pub solution_ids: Vec<String>,
    /// The points its tests are worth.
    pub points: f64,
}

impl Source {
    /// Reads the source notebooks at `path` (a notebook or a folder).
    pub fn read(path: &Path) -> Result<Source, BadNotebook> {
        let mut notebooks = Vec::new();
        let mut hasher = Sha256::new();
        for file in notebook::find(path)? {
            let notebook = Notebook::read(&file)?;
            // Settings are checked now, so a bad source fails before any run.
            let points = plan::plan(&notebook, None)?.iter().map(Step::points).sum();
            hasher.update(notebook.json.to_string().as_bytes());
            notebooks.push(SourceNotebook {
                solution_ids: plan::solution_ids(&notebook),
                notebook,
                points,
            });
        }
        Ok(Source {
            notebooks,
            digest: hex(&hasher.finalize()),
        })
    }

    /// The points at stake for `submission`, also when it cannot be read,
    /// so that it earns 0 of them rather than 0 of 0: for a learner's
    /// folder every source notebook's, for one notebook those of the
    /// source notebook of the same name (or of the only one).
    fn points_for(&self, submission: &Submission) -> f64 {
        let name = file_name(&submission.path);
        self.notebooks
            .iter()
            .filter(|source| {
                !submission.path.is_file()
                    || self.notebooks.len() == 1
                    || file_name(&source.notebook.path) == name
            })
            .map(|source| source.points)
            .sum()
    }
}

/// The notebook runs one submission needs, or why it cannot be graded.
fn jobs_for(
    source: &Source,
    submission: &Submission,
) -> Result<Vec<(String, Vec<Step>)>, BadNotebook> {
    let files = if submission.path.is_file() {
        vec![submission.path.clone()]
    } else {
        notebook::find(&submission.path)?
    };
    let mut learner = Vec::new();
    for file in &files {
        learner.push(Notebook::read(file)?);
    }
    let single = submission.path.is_file();
    let mut jobs = Vec::new();
    for SourceNotebook {
        notebook: source_notebook,
        solution_ids: ids,
        ..
    } in &source.notebooks
    {
        let name = file_name(&source_notebook.path);
        // The learner's notebook for this source one: the same file name, or
        // the one holding its exercises (learners rename files).
        let matching = learner
            .iter()
            .find(|n| file_name(&n.path) == name)
            .or_else(|| {
                learner
                    .iter()
                    .find(|n| ids.iter().any(|id| contains_grade_id(n, id)))
            });
        let steps = match matching {
            Some(found) => plan::plan(source_notebook, Some(found))?,
            // A one-notebook submission is graded against its own notebook only.
            None if single => continue,
            None => plan::plan(source_notebook, Some(&empty_like(source_notebook)))?,
        };
        jobs.push((name, steps));
    }
    if jobs.is_empty() {
        return Err(BadNotebook {
            path: submission.path.clone(),
            problem: "none of the source's exercises (grade_ids) are in this notebook".into(),
        });
    }
    Ok(jobs)
}

fn contains_grade_id(notebook: &Notebook, id: &str) -> bool {
    notebook.json["cells"]
        .as_array()
        .is_some_and(|cells| cells.iter().any(|c| notebook::grade_id(c) == Some(id)))
}

fn empty_like(notebook: &Notebook) -> Notebook {
    Notebook {
        path: notebook.path.clone(),
        json: serde_json::json!({"nbformat": 4, "cells": []}),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where finished submissions are kept, so a rerun resumes.
pub struct ResultStore {
    dir: PathBuf,
}

impl ResultStore {
    /// The store of a report written to `report`: `report.parts`, beside
    /// it (`site/`, a class site, keeps its parts in `site.parts`).
    pub fn beside(report: &Path) -> PathBuf {
        let mut name = report.components().as_path().as_os_str().to_owned();
        name.push(".parts");
        PathBuf::from(name)
    }

    /// A store in `dir`, created if needed.
    pub fn open(dir: &Path) -> anyhow::Result<ResultStore> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(ResultStore {
            dir: dir.to_owned(),
        })
    }

    fn file(&self, submission: &Submission, key: &str) -> PathBuf {
        let mut hasher = Sha256::new();
        hasher.update(submission.path.to_string_lossy().as_bytes());
        hasher.update(key.as_bytes());
        let digest = hex(&hasher.finalize());
        let safe = crate::report::file_safe(&submission.name);
        self.dir.join(format!("{safe}-{}.json", &digest[..12]))
    }

    fn load(&self, submission: &Submission, key: &str) -> Option<SubmissionReport> {
        let text = std::fs::read_to_string(self.file(submission, key)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn save(
        &self,
        submission: &Submission,
        key: &str,
        report: &SubmissionReport,
    ) -> anyhow::Result<()> {
        let path = self.file(submission, key);
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, serde_json::to_vec_pretty(report)?)
            .with_context(|| format!("writing {}", partial.display()))?;
        // Renamed into place: an interrupted write never looks finished.
        std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))
    }
}

/// The content a submission's result depends on: the source, the
/// submission's files and the mode.
fn result_key(source: &Source, submission: &Submission, mode: Mode) -> String {
    let mut hasher = Sha256::new();
    hasher.update(source.digest.as_bytes());
    hasher.update(format!("{mode:?}").as_bytes());
    let files = if submission.path.is_file() {
        vec![submission.path.clone()]
    } else {
        notebook::find(&submission.path).unwrap_or_default()
    };
    for file in files {
        hasher.update(std::fs::read(&file).unwrap_or_default());
    }
    hex(&hasher.finalize())
}

/// Called as each submission finishes: (done so far, total, the result).
pub type Progress = Box<dyn Fn(usize, usize, &SubmissionReport) + Send + Sync>;

/// Grades every submission against `source`, `jobs` notebook runs at a
/// time, and returns their reports in submission order.
pub async fn grade(
    source: Arc<Source>,
    submissions: Vec<Submission>,
    settings: Arc<Settings>,
    jobs: usize,
    store: Option<ResultStore>,
    progress: Progress,
) -> Vec<SubmissionReport> {
    let total = submissions.len();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let store = store.map(Arc::new);
    let progress = Arc::new(progress);
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, submission) in submissions.into_iter().enumerate() {
        let (source, settings, semaphore, store, progress, done) = (
            source.clone(),
            settings.clone(),
            semaphore.clone(),
            store.clone(),
            progress.clone(),
            done.clone(),
        );
        tasks.spawn(async move {
            let key = result_key(&source, &submission, settings.mode);
            let report = match store.as_ref().and_then(|s| s.load(&submission, &key)) {
                Some(kept) => kept,
                None => {
                    let report = grade_one(&source, &submission, &settings, &semaphore, jobs).await;
                    if let Some(store) = &store
                        && let Err(error) = store.save(&submission, &key, &report)
                    {
                        tracing::error!("{error:#}");
                    }
                    report
                }
            };
            let finished = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            progress(finished, total, &report);
            (index, report)
        });
    }
    let mut reports = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, report)) => {
                reports.insert(index, report);
            }
            Err(error) => tracing::error!("a grading task failed: {error}"),
        }
    }
    reports.into_values().collect()
}

async fn grade_one(
    source: &Source,
    submission: &Submission,
    settings: &Arc<Settings>,
    semaphore: &Arc<tokio::sync::Semaphore>,
    at_once: usize,
) -> SubmissionReport {
    let mut report = SubmissionReport {
        submission: submission.name.clone(),
        path: submission.path.display().to_string(),
        notebooks: Vec::new(),
    };
    let jobs = match jobs_for(source, submission) {
        Ok(jobs) => jobs,
        Err(bad) => {
            report.notebooks.push(NotebookReport {
                notebook: file_name(&bad.path),
                checks: vec![Check::about_the_run(
                    "submission",
                    CheckKind::Submission,
                    Outcome::BadInput,
                    source.points_for(submission),
                    bad.to_string(),
                )],
                time_s: 0.0,
            });
            return report;
        }
    };
    report.notebooks =
        lanes::run_notebooks(jobs, settings.clone(), semaphore.clone(), at_once).await;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_cover_the_batch() {
        let batch: Vec<u32> = (0..10).collect();
        let mut all: Vec<u32> = (0..3)
            .flat_map(|index| Shard { index, count: 3 }.select(batch.clone()))
            .collect();
        all.sort();
        assert_eq!(all, batch);
        assert_eq!(Shard { index: 1, count: 3 }.select(batch), vec![1, 4, 7]);
    }

    #[test]
    fn a_report_keeps_its_parts_beside_it() {
        assert_eq!(
            ResultStore::beside(Path::new("out/report.json")),
            PathBuf::from("out/report.json.parts")
        );
        assert_eq!(
            ResultStore::beside(Path::new("site/")),
            PathBuf::from("site.parts")
        );
    }

    #[test]
    fn a_shard_is_written_i_slash_n() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert!("4/4".parse::<Shard>().unwrap_err().contains("less than N"));
        assert!("x".parse::<Shard>().unwrap_err().contains("I/N"));
    }
}
