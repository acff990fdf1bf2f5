//! Registries in object storage (issue 13): regkit against moto's S3 server
//! and the real registry on its `s3` storage driver over the same bucket.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::*;

/// moto's S3 server, one for the whole test run. It is started through a
/// shell that kills it when our end of its stdin closes (when the test
/// process exits, however it exits).
pub struct Moto {
    pub port: u16,
    _child: std::sync::Mutex<Child>,
}

pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let bin = repo_dir().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "no {} (run scripts/install-deps.sh)",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("regkit-moto-{}.log", std::process::id()));
        let script = format!(
            "{} -H 127.0.0.1 -p {port} >{} 2>&1 & pid=$!; cat >/dev/null; kill $pid",
            bin.display(),
            log.display()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(port, "/").is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            port,
            _child: std::sync::Mutex::new(child),
        }
    })
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new, empty bucket.
    pub fn bucket(&self, name: &str) -> String {
        let r = run_cmd(
            "curl",
            &[
                "-s",
                "-f",
                "-X",
                "PUT",
                &format!("{}/{name}", self.endpoint()),
            ],
        );
        assert_eq!(r.code, 0, "create bucket {name}: {}", r.stderr);
        name.to_string()
    }

    /// Every key of a bucket below `prefix`, with its size.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let py = repo_dir().join(".venv/bin/python");
        let script = format!(
            "import boto3\ns3=boto3.client('s3',endpoint_url='{}',aws_access_key_id='k',aws_secret_access_key='s',region_name='us-east-1')\nfor p in s3.get_paginator('list_objects_v2').paginate(Bucket='{bucket}',Prefix='{prefix}'):\n  for o in p.get('Contents',[]): print(o['Key'], o['Size'])",
            self.endpoint()
        );
        let r = run_cmd(py.to_str().unwrap(), &["-c", &script]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
            .lines()
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(k, n)| (k.to_string(), n.parse().unwrap()))
            .collect()
    }
}

/// regkit with the environment that points it at moto.
pub fn regkit_s3(args: &[&str]) -> Run {
    let o = Command::new(regkit_path())
        .args(args)
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw_stdout: o.stdout,
    }
}

/// The registry's configuration for a tree in a bucket.
pub fn s3_config(dir: &Path, bucket: &str, root: &str, port: u16) -> PathBuf {
    let config = dir.join(format!("config-{bucket}.yml"));
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  s3: {{region: us-east-1, bucket: {bucket}, regionendpoint: \"{}\", accesskey: k, secretkey: s, secure: false, v4auth: true, rootdirectory: /{root}}}\n  redirect: {{disable: true}}\n  delete: {{enabled: true}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            moto().endpoint()
        ),
    )
    .unwrap();
    config
}

/// Debian's registry serving a tree in a bucket (its 2.8 panics at start
/// when AWS_CA_BUNDLE is set: it is unset for it).
pub struct S3Registry {
    pub port: u16,
    pub config: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl S3Registry {
    pub fn start(bucket: &str, root: &str) -> S3Registry {
        let dir = tempdir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = s3_config(dir.path(), bucket, root, port);
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .env_remove("AWS_CA_BUNDLE")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_get(port, "/v2/").is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry on s3 did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Registry {
            port,
            config,
            child,
            _dir: dir,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The copyable tags of a fixture (skopeo 1.9 cannot copy nested indexes).
fn copyable(f: &Fixture) -> Vec<(String, String)> {
    f.images()
        .into_iter()
        .filter(|(r, _, c)| *c && !r.contains('@'))
        .map(|(r, d, _)| (r, d))
        .collect()
}

/// skopeo copies every copyable tag from the registry with digests equal.
fn assert_registry_serves(reg: &S3Registry, f: &Fixture) -> usize {
    let mut n = 0;
    for (r, d) in copyable(f) {
        let got = skopeo_copy_all(&format!("docker://{}/{r}", reg.host()))
            .unwrap_or_else(|e| panic!("{r}: {e}"));
        assert_eq!(got, d, "{r}");
        n += 1;
    }
    assert!(n >= 30, "only {n} tags checked");
    n
}

/// The files of a tree on disk, relative to its `v2` folder, with sizes.
fn tree_files(root: &Path) -> BTreeSet<(String, u64)> {
    let v2 = root.join("docker/registry/v2");
    files_under(&v2)
        .into_iter()
        .map(|f| {
            let n = fs::metadata(v2.join(&f)).unwrap().len();
            (f, n)
        })
        .collect()
}

#[test]
fn select_into_s3_writes_the_tree_select_writes_on_disk_and_the_registry_serves_it() {
    let f = sample();
    let b = moto().bucket("select-into");
    let r = regkit_s3(&["select", s(&f.root), &format!("s3://{b}/reg")]).ok();
    assert!(r.stdout.contains("selected 40 image(s)"), "{}", r.stdout);
    // The same keys as the files of a select on disk.
    let t = tempdir();
    regkit(["-q", "select", s(&f.root), s(&t.path().join("disk"))]).ok();
    let want = tree_files(&t.path().join("disk"));
    let got: BTreeSet<(String, u64)> = moto()
        .keys(&b, "reg/docker/registry/v2/")
        .into_iter()
        .map(|(k, n)| {
            (
                k.strip_prefix("reg/docker/registry/v2/")
                    .unwrap()
                    .to_string(),
                n,
            )
        })
        .collect();
    assert_eq!(got, want);
    let reg = S3Registry::start(&b, "reg");
    assert_registry_serves(&reg, f);
    // Again: nothing new is written.
    let r = regkit_s3(&["select", s(&f.root), &format!("s3://{b}/reg")]).ok();
    assert!(
        r.stdout.contains("0 written, 254 already present"),
        "{}",
        r.stdout
    );
}

#[test]
fn regkit_reads_what_the_registry_wrote_to_s3_after_skopeo_pushes() {
    let f = sample();
    let b = moto().bucket("pushed");
    let src = Registry::start(&f.root);
    let dst = S3Registry::start(&b, "mirror");
    let mut pushed = Vec::new();
    for (r, d) in copyable(f).into_iter().take(12) {
        let out = skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "-q",
            &format!("docker://{}/{r}", src.host()),
            &format!("docker://{}/{r}", dst.host()),
        ]);
        assert_eq!(out.code, 0, "{r}: {}", out.stderr);
        pushed.push((r, d));
    }
    assert_eq!(pushed.len(), 12);
    // Through the registry's own configuration file, and as s3://.
    for root in [s(&dst.config).to_string(), format!("s3://{b}/mirror")] {
        let ls = regkit_s3(&["ls", "--json", &root]).ok().json();
        let listed: Vec<(String, String)> = ls
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["name"].as_str().unwrap().to_string(),
                    i["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for p in &pushed {
            assert!(listed.contains(p), "{root}: {p:?} not in {listed:?}");
        }
        regkit_s3(&["-q", "verify", &root]).ok();
    }
    // extract from the bucket: skopeo reads the dir: folders.
    let t = tempdir();
    let out = t.path().join("ext");
    regkit_s3(&["-q", "extract", &format!("s3://{b}/mirror"), s(&out)]).ok();
    for (r, d) in &pushed {
        let got = skopeo_copy_all(&format!("dir:{}", out.join(r).display())).unwrap();
        assert_eq!(&got, d, "{r}");
    }
}

#[test]
fn reading_commands_give_the_same_results_from_s3_as_from_disk() {
    let f = sample();
    let b = moto().bucket("reads");
    let root = format!("s3://{b}/r");
    regkit_s3(&["-q", "select", s(&f.root), &root]).ok();
    let t = tempdir();
    // ls and inspect: the same output.
    for args in [
        vec!["ls", "--json"],
        vec!["inspect", "multi/docker-list:1", "--raw"],
        vec!["inspect", "team/app:v1"],
        vec!["verify", "--json"],
    ] {
        let mut disk = vec![args[0], s(&f.root)];
        disk.extend(&args[1..]);
        let mut remote = vec![args[0], root.as_str()];
        remote.extend(&args[1..]);
        let a = regkit(&disk).ok();
        let r = regkit_s3(&remote).ok();
        if args[0] == "verify" {
            assert_eq!(a.json()["findings"], r.json()["findings"]);
        } else {
            assert_eq!(a.raw_stdout, r.raw_stdout, "{args:?}");
        }
    }
    // pack is reproducible: the same bundle from either tree.
    let (pd, ps) = (t.path().join("d.tar"), t.path().join("s.tar"));
    regkit(["-q", "pack", s(&f.root), s(&pd)]).ok();
    regkit_s3(&["-q", "pack", &root, s(&ps)]).ok();
    assert_eq!(sha256_file(&pd), sha256_file(&ps));
    // export to an OCI layout: the same files.
    let (ed, es) = (t.path().join("ed"), t.path().join("es"));
    regkit(["-q", "export", s(&f.root), s(&ed), "--format", "oci"]).ok();
    regkit_s3(&["-q", "export", &root, s(&es), "--format", "oci"]).ok();
    assert_same_tree(&ed, &es);
    // diff of the bucket against the disk: nothing changed.
    let d = regkit_s3(&["diff", "--json", s(&f.root), &root])
        .ok()
        .json();
    assert_eq!(d["added"].as_array().unwrap().len(), 0, "{d}");
    assert_eq!(d["changed"].as_array().unwrap().len(), 0, "{d}");
    // select out of the bucket onto disk: the tree select writes from disk.
    let (sd, ss) = (t.path().join("sd"), t.path().join("ss"));
    regkit(["-q", "select", s(&f.root), s(&sd)]).ok();
    let r = regkit_s3(&["select", &root, s(&ss)]).ok();
    assert!(
        r.stderr.contains("copied with their digests checked"),
        "{}",
        r.stderr
    );
    assert_eq!(tree_files(&sd), tree_files(&ss));
}

#[test]
fn select_from_s3_to_s3_copies_on_the_server() {
    let f = sample();
    let (a, b) = (moto().bucket("s2s-a"), moto().bucket("s2s-b"));
    regkit_s3(&["-q", "select", s(&f.root), &format!("s3://{a}/src")]).ok();
    let r = regkit_s3(&[
        "select",
        &format!("s3://{a}/src"),
        &format!("s3://{b}/dst"),
        "team/app",
        "multi/oci-index:1",
    ])
    .ok();
    assert!(r.stdout.contains("reflinked"), "{}", r.stdout);
    let reg = S3Registry::start(&b, "dst");
    for r in ["team/app:v1", "team/app:v2", "multi/oci-index:1"] {
        let got = skopeo_copy_all(&format!("docker://{}/{r}", reg.host())).unwrap();
        assert_eq!(got, f.digest(r), "{r}");
    }
}

#[test]
fn unpack_and_import_write_into_s3_and_the_registry_serves_them() {
    let f = sample();
    let b = moto().bucket("unpack-import");
    let t = tempdir();
    let bundle = t.path().join("b.tar");
    regkit(["-q", "pack", s(&f.root), s(&bundle)]).ok();
    regkit_s3(&["-q", "unpack", s(&bundle), &format!("s3://{b}/u")]).ok();
    let reg = S3Registry::start(&b, "u");
    assert_registry_serves(&reg, f);
    drop(reg);
    // import of extracted dir: folders and of an OCI archive.
    let ext = t.path().join("ext");
    regkit([
        "-q",
        "extract",
        s(&f.root),
        s(&ext),
        "team/app",
        "multi/docker-list:1",
    ])
    .ok();
    let oci = t.path().join("x.tar");
    regkit([
        "-q",
        "export",
        s(&f.root),
        s(&oci),
        "a/b/c/deep:1.0",
        "--format",
        "oci-archive",
    ])
    .ok();
    regkit_s3(&["-q", "import", s(&ext), s(&oci), &format!("s3://{b}/i")]).ok();
    let reg = S3Registry::start(&b, "i");
    for r in [
        "team/app:v1",
        "team/app:v2",
        "multi/docker-list:1",
        "a/b/c/deep:1.0",
    ] {
        let got = skopeo_copy_all(&format!("docker://{}/{r}", reg.host())).unwrap();
        assert_eq!(got, f.digest(r), "{r}");
    }
    // Nothing was staged beside a path named like the bucket.
    assert!(!Path::new("s3:").exists());
}

/// The blobs `docker-registry garbage-collect --dry-run` would delete.
fn registry_gc_eligible(config: &Path, delete_untagged: bool) -> BTreeSet<String> {
    let mut args = vec!["garbage-collect", "--dry-run"];
    if delete_untagged {
        args.push("--delete-untagged");
    }
    let config = config.to_str().unwrap();
    args.push(config);
    let o = Command::new("docker-registry")
        .args(&args)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("blob eligible for deletion: "))
        .map(str::to_string)
        .collect()
}

fn freed(j: &serde_json::Value) -> BTreeSet<String> {
    j["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn delete_and_gc_on_s3_collect_what_the_registrys_collector_finds() {
    let f = sample();
    let b = moto().bucket("gc-default");
    let root = format!("s3://{b}/g");
    regkit_s3(&["-q", "select", s(&f.root), &root]).ok();
    // Delete a few images, as DELETE /v2/<name>/manifests/<digest> would.
    regkit_s3(&[
        "-q",
        "delete",
        &root,
        "team/app:v2",
        "multi/oci-index:1",
        "--manifest",
    ])
    .ok();
    let t = tempdir();
    let config = s3_config(t.path(), &b, "g", 5000);
    let theirs = registry_gc_eligible(&config, false);
    let j = regkit_s3(&["gc", &root, "--dry-run", "--json"]).ok().json();
    let ours = freed(&j);
    assert!(ours.len() >= 4, "{ours:?}");
    assert_eq!(ours, theirs);
    assert!(j["requests"].as_u64().unwrap() > 0, "{j}");
    // The sweep: those blobs are gone, the registry serves every other tag.
    let r = regkit_s3(&["gc", &root, "--json"]).ok().json();
    assert_eq!(freed(&r), ours);
    let keys: BTreeSet<String> = moto().keys(&b, "g/").into_iter().map(|(k, _)| k).collect();
    for d in &ours {
        let hex = d.strip_prefix("sha256:").unwrap();
        let key = format!("g/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]);
        assert!(!keys.contains(&key), "{key} is still there");
    }
    assert!(
        !keys.iter().any(|k| k.contains(".regkit")),
        "lock objects left: {keys:?}"
    );
    let reg = S3Registry::start(&b, "g");
    let mut served = 0;
    for (r, d) in copyable(f) {
        if r == "team/app:v2" || r == "multi/oci-index:1" {
            assert_eq!(manifest_status_at(reg.port, &r), 404, "{r}");
            continue;
        }
        assert_eq!(
            skopeo_copy_all(&format!("docker://{}/{r}", reg.host())).unwrap(),
            d,
            "{r}"
        );
        served += 1;
    }
    assert!(served >= 28, "{served}");
    // A second gc finds nothing.
    let again = regkit_s3(&["gc", &root, "--dry-run", "--json"]).ok().json();
    assert_eq!(again["freed_blobs"], 0);
}

fn manifest_status_at(port: u16, r: &str) -> u16 {
    let (repo, tag) = r.rsplit_once(':').unwrap();
    http_get(port, &format!("/v2/{repo}/manifests/{tag}"))
        .unwrap()
        .0
}

#[test]
fn gc_delete_untagged_on_s3_equals_gc_on_disk() {
    let f = sample();
    let b = moto().bucket("gc-untagged");
    let root = format!("s3://{b}/u");
    // The fixture as the registry wrote it, untagged manifests included.
    let t = tempdir();
    let tar = t.path().join("all.tar");
    run_cmd("tar", &["-C", s(&f.root), "-cf", s(&tar), "docker"]).ok();
    regkit_s3(&["-q", "unpack", s(&tar), &root]).ok();
    let copy = copy_fixture(f, t.path(), "disk");
    let disk = regkit([
        "gc",
        s(&copy.root),
        "--delete-untagged",
        "--dry-run",
        "--json",
    ])
    .ok()
    .json();
    let ours = regkit_s3(&["gc", &root, "--delete-untagged", "--dry-run", "--json"])
        .ok()
        .json();
    assert!(!freed(&disk).is_empty());
    assert_eq!(freed(&ours), freed(&disk));
    assert_eq!(ours["manifests"], disk["manifests"]);
    regkit_s3(&["-q", "gc", &root, "--delete-untagged"]).ok();
    regkit_s3(&["-q", "verify", &root]).ok();
}

#[test]
fn purging_an_upload_in_s3_aborts_its_pending_multipart_upload() {
    let f = sample();
    let b = moto().bucket("uploads");
    regkit_s3(&[
        "-q",
        "select",
        s(&f.root),
        &format!("s3://{b}/p"),
        "team/app:v1",
    ])
    .ok();
    let reg = S3Registry::start(&b, "p");
    // An upload started and fed, never finished.
    let r = run_cmd(
        "curl",
        &[
            "-s",
            "-i",
            "-X",
            "POST",
            &format!("http://{}/v2/team/app/blobs/uploads/", reg.host()),
        ],
    );
    let location = r
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("http://{}{location}", reg.host())
    };
    run_cmd(
        "curl",
        &[
            "-s",
            "-f",
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            "some bytes",
            &url,
        ],
    )
    .ok();
    drop(reg);
    let pending = || {
        let py = repo_dir().join(".venv/bin/python");
        let script = format!(
            "import boto3\ns3=boto3.client('s3',endpoint_url='{}',aws_access_key_id='k',aws_secret_access_key='s',region_name='us-east-1')\nprint(len(s3.list_multipart_uploads(Bucket='{b}').get('Uploads',[])))",
            moto().endpoint()
        );
        run_cmd(py.to_str().unwrap(), &["-c", &script])
            .ok()
            .stdout
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    assert_eq!(pending(), 1);
    let root = format!("s3://{b}/p");
    // Fresh: gc refuses (a registry may be writing), then purges with --force.
    let r = regkit_s3(&["gc", &root]).fails(1);
    assert!(
        r.stderr.contains("a registry may be writing"),
        "{}",
        r.stderr
    );
    let j = regkit_s3(&[
        "gc",
        &root,
        "--uploads-older-than",
        "0s",
        "--force",
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(j["uploads"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(pending(), 0);
    assert!(!moto()
        .keys(&b, "p/")
        .iter()
        .any(|(k, _)| k.contains("/_uploads/")));
}

#[test]
fn an_interrupted_upload_into_s3_leaves_no_object_and_a_rerun_completes() {
    let b = moto().bucket("interrupt");
    let t = tempdir();
    // A dir: image with a 40 MiB layer: a multipart upload of three parts.
    let img = t.path().join("img");
    let script = format!(
        "import os,hashlib,json\nd='{}'\nos.makedirs(d)\nlayer=os.urandom(40<<20)\ncfg=b'{{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[]}}}}'\nh=lambda b: hashlib.sha256(b).hexdigest()\nopen(d+'/'+h(layer),'wb').write(layer)\nopen(d+'/'+h(cfg),'wb').write(cfg)\nm={{'schemaVersion':2,'mediaType':'application/vnd.oci.image.manifest.v1+json','config':{{'mediaType':'application/vnd.oci.image.config.v1+json','digest':'sha256:'+h(cfg),'size':len(cfg)}},'layers':[{{'mediaType':'application/vnd.oci.image.layer.v1.tar','digest':'sha256:'+h(layer),'size':len(layer)}}]}}\nmb=json.dumps(m).encode()\nopen(d+'/manifest.json','wb').write(mb)\nopen(d+'/version','w').write('Directory Transport Version: 1.1\\n')\nprint('sha256:'+h(mb))",
        img.display()
    );
    let digest = run_cmd("python3", &["-c", &script])
        .ok()
        .stdout
        .trim()
        .to_string();
    let root = format!("s3://{b}/i");
    let child = Command::new(regkit_path())
        .args(["-q", "import", s(&img), &root, "--repo", "big/app:1"])
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("REGKIT_TEST_STEP_DELAY_MS", "300")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the multipart upload has begun, Ctrl-C.
    let deadline = Instant::now() + Duration::from_secs(60);
    let py = repo_dir().join(".venv/bin/python");
    let pending_script = format!(
        "import boto3\ns3=boto3.client('s3',endpoint_url='{}',aws_access_key_id='k',aws_secret_access_key='s',region_name='us-east-1')\nprint(len(s3.list_multipart_uploads(Bucket='{b}').get('Uploads',[])))",
        moto().endpoint()
    );
    let pending = || {
        run_cmd(py.to_str().unwrap(), &["-c", &pending_script])
            .stdout
            .trim()
            .parse::<usize>()
            .unwrap_or(0)
    };
    while pending() == 0 {
        assert!(Instant::now() < deadline, "the upload never began");
        std::thread::sleep(Duration::from_millis(50));
    }
    run_cmd("kill", &["-INT", &child.id().to_string()]);
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // No object at the layer's key, no link, no tag.
    let keys = moto().keys(&b, "i/");
    assert!(
        !keys
            .iter()
            .any(|(k, n)| k.ends_with("/data") && *n > 1 << 20),
        "a half or whole layer object: {keys:?}"
    );
    assert!(!keys.iter().any(|(k, _)| k.ends_with("/link")), "{keys:?}");
    // A rerun completes it; the registry serves it.
    regkit_s3(&["-q", "import", s(&img), &root, "--repo", "big/app:1"]).ok();
    let reg = S3Registry::start(&b, "i");
    let got = skopeo_copy_all(&format!("docker://{}/big/app:1", reg.host())).unwrap();
    assert_eq!(got, digest);
}

#[test]
fn push_from_a_bucket_sends_every_image_to_a_live_registry() {
    // The operators' migration: a registry kept in S3 pushed into another.
    let f = sample();
    let b = moto().bucket("push-from");
    let root = format!("s3://{b}/src");
    regkit_s3(&["-q", "select", s(&f.root), &root]).ok();
    let dst = tempdir();
    let reg = Registry::start(dst.path());
    let j = regkit_s3(&["push", &root, &reg.host(), "--tls-verify=false", "--json"])
        .ok()
        .json();
    assert_eq!(j["totals"]["pushed"], f.images().len(), "{j}");
    let mut checked = 0;
    for (r, d) in copyable(f) {
        let got = skopeo_copy_all(&format!("docker://{}/{r}", reg.host())).unwrap();
        assert_eq!(got, d, "{r}");
        checked += 1;
    }
    assert!(checked >= 30);
}

#[test]
fn pull_into_s3_writes_the_keys_select_writes_and_the_registry_serves_them() {
    let f = sample();
    let t = tempdir();
    let up_root = t.path().join("up");
    copy_tree(&f.root, &up_root);
    let up = Registry::start(&up_root);
    let from = format!("http://{}", up.host());
    let b = moto().bucket("pull-into");
    let j = regkit_s3(&["pull", &format!("s3://{b}/reg"), "--from", &from, "--json"])
        .ok()
        .json();
    assert_eq!(j["totals"]["pulled"], 40, "{}", j["totals"]);
    // The keys are the files select writes on disk.
    let disk = t.path().join("disk");
    regkit(["-q", "select", s(&up_root), s(&disk)]).ok();
    let got: BTreeSet<(String, u64)> = moto()
        .keys(&b, "reg/docker/registry/v2/")
        .into_iter()
        .map(|(k, n)| {
            let rel = k.strip_prefix("reg/docker/registry/v2/").unwrap();
            (rel.to_string(), n)
        })
        .collect();
    assert_eq!(got, tree_files(&disk));
    let reg = S3Registry::start(&b, "reg");
    assert_registry_serves(&reg, f);
    // Again: every tag is there, nothing is downloaded.
    let j = regkit_s3(&["pull", &format!("s3://{b}/reg"), "--from", &from, "--json"])
        .ok()
        .json();
    assert_eq!(j["totals"]["up_to_date"], 40);
    assert_eq!(j["totals"]["bytes_downloaded"], 0);
}

/// Every file of a tree on disk put into a bucket as it is (damage too), as
/// the registry's s3 driver would hold it.
fn upload_tree(root: &Path, bucket: &str, prefix: &str) {
    let py = repo_dir().join(".venv/bin/python");
    let script = format!(
        "import boto3,os,sys\ns3=boto3.client('s3',endpoint_url='{}',aws_access_key_id='k',aws_secret_access_key='s',region_name='us-east-1')\nroot=sys.argv[1]\nfor d,_,fs in os.walk(root):\n  for f in fs:\n    p=os.path.join(d,f)\n    s3.upload_file(p,'{bucket}','{prefix}/'+os.path.relpath(p,root))",
        moto().endpoint()
    );
    run_cmd(py.to_str().unwrap(), &["-c", &script, s(root)]).ok();
}

/// verify's findings without where the tree is: kind, message, images and
/// the path inside `v2/`.
fn findings(v: &serde_json::Value) -> BTreeSet<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap_or("");
            let inside = path.split_once("docker/registry/v2/").map_or("", |x| x.1);
            let message = f["message"].as_str().unwrap().replace(path, "");
            format!("{} {} {} {}", f["kind"], message, f["images"], inside)
        })
        .collect()
}

#[test]
fn verify_finds_in_a_bucket_the_damage_it_finds_on_disk_with_and_without_fast() {
    let f = sample_with_every_damage();
    let b = moto().bucket("damaged");
    upload_tree(&f.root, &b, "r");
    let root = format!("s3://{b}/r");
    let mut checked = 0;
    for extra in [vec![], vec!["--fast"]] {
        let mut disk = vec!["verify", s(&f.root), "--json"];
        disk.extend(&extra);
        let mut remote = vec!["verify", root.as_str(), "--json"];
        remote.extend(&extra);
        let (a, r) = (
            regkit(&disk).fails(1).json(),
            regkit_s3(&remote).fails(1).json(),
        );
        let (fa, fr) = (findings(&a), findings(&r));
        assert!(
            fa.len() >= 8,
            "{extra:?}: only {} findings on disk",
            fa.len()
        );
        assert_eq!(fa, fr, "{extra:?}");
        if extra.is_empty() {
            assert_eq!(a["hashed_bytes"], r["hashed_bytes"]);
        } else {
            // Sizes and links from the listings, manifests read once each:
            // far fewer requests than files.
            let requests = r["requests"].as_u64().unwrap();
            let files = files_under(&f.root).len() as u64;
            assert!(
                requests * 2 < files,
                "{requests} requests for {files} files"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn serve_over_a_bucket_gives_skopeo_every_image_with_its_digest() {
    use std::io::BufRead;
    let f = sample();
    let b = moto().bucket("served");
    let root = format!("s3://{b}/r");
    regkit_s3(&["-q", "select", s(&f.root), &root]).ok();
    let mut child = Command::new(regkit_path())
        .args(["serve", &root, "--addr", "127.0.0.1:0", "--json", "-q"])
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("AWS_REGION", "us-east-1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        let _ = child.kill();
        panic!("no start-up line ({e}): {line:?}")
    });
    let host = started["address"].as_str().unwrap().to_string();
    let mut n = 0;
    for (r, d) in copyable(f) {
        let got = skopeo_copy_all(&format!("docker://{host}/{r}"));
        if got.as_deref() != Ok(d.as_str()) {
            let _ = child.kill();
            panic!("{r}: {got:?}, not {d}");
        }
        n += 1;
    }
    // A manifest by digest over raw HTTP: the exact bytes stored.
    let (_, d) = &copyable(f)[0];
    let port: u16 = host.rsplit(':').next().unwrap().parse().unwrap();
    let (code, body) = http_get(
        port,
        &format!(
            "/v2/{}/manifests/{}",
            copyable(f)[0].0.split(':').next().unwrap(),
            d
        ),
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 200);
    assert_eq!(format!("sha256:{}", sha256_hex(&body)), *d);
    assert!(n >= 30, "only {n} tags checked");
}
