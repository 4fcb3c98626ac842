//! Users: the container's login user, its password (locked unless one is
//! given, fed to `chpasswd` on stdin), sudo membership, `authorized_keys`,
//! and a host user whose home is bind-mounted into the container.

use lxc_tmpl_plugin_api::{CommandSpec, FileKind, Host, PluginError};

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// The comment (GECOS) field.
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

/// Parses `name:x:uid:gid:gecos:home:shell`.
pub fn parse_passwd_line(line: &str) -> Option<PasswdEntry> {
    let fields: Vec<&str> = line.trim_end_matches('\n').split(':').collect();
    if fields.len() != 7 {
        return None;
    }
    Some(PasswdEntry {
        name: fields[0].to_owned(),
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        gecos: fields[4].to_owned(),
        home: fields[5].to_owned(),
        shell: fields[6].to_owned(),
    })
}

/// The entry of `name` in a passwd file's text.
pub fn find_passwd(text: &str, name: &str) -> Option<PasswdEntry> {
    text.lines().filter_map(parse_passwd_line).find(|e| e.name == name)
}

/// One `/etc/group` line: name and gid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
}

/// Parses `name:x:gid:members`.
pub fn parse_group_line(line: &str) -> Option<GroupEntry> {
    let fields: Vec<&str> = line.trim_end_matches('\n').split(':').collect();
    if fields.len() != 4 {
        return None;
    }
    Some(GroupEntry { name: fields[0].to_owned(), gid: fields[2].parse().ok()? })
}

/// Checks a login name for `useradd` (Debian's default rule, without the
/// trailing `$` of machine accounts): starts with a lowercase letter or
/// `_`, then lowercase letters, digits, `_` and `-`, at most 32 characters;
/// not `root`.
pub fn validate_user_name(option: &str, name: &str) -> Result<(), PluginError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        return Err(PluginError::invalid_input(format!(
            "--{option} '{name}' is not a valid user name (lowercase letters, digits, _ and -, starting with a letter)"
        )));
    }
    if name == "root" {
        return Err(PluginError::invalid_input(format!(
            "--{option} root: root exists already and is reached with lxc-attach; choose a user name"
        )));
    }
    Ok(())
}

/// The password a created user gets.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// Locked (`!` in `/etc/shadow`): no password login; get in with
    /// `lxc-attach` or an authorized key.
    Locked,
    /// This password, set with `chpasswd` reading it on stdin.
    Set(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Password::Locked => "Locked",
            Password::Set(_) => "Set(<hidden>)",
        })
    }
}

/// The password from `--password` or `--password-file` (its first line),
/// `Locked` when neither is given. Both at once is an error.
pub fn choose_password(
    host: &mut Host<'_>,
    password: Option<&str>,
    password_file: Option<&str>,
) -> Result<Password, PluginError> {
    let text = match (password, password_file) {
        (Some(_), Some(_)) => {
            return Err(PluginError::invalid_input("give --password or --password-file, not both"));
        }
        (None, None) => return Ok(Password::Locked),
        (Some(password), None) => password.to_owned(),
        (None, Some(file)) => {
            if host.host_file_kind(file)? != Some(FileKind::File) {
                return Err(PluginError::invalid_input(format!("--password-file {file}: no such file")));
            }
            let data = host.read_host_file(file)?;
            String::from_utf8_lossy(&data).lines().next().unwrap_or_default().to_owned()
        }
    };
    if text.is_empty() || text.contains(['\n', '\r', '\0']) {
        return Err(PluginError::invalid_input(
            "the password is empty or has a line break; leave --password out for a locked password",
        ));
    }
    Ok(Password::Set(text))
}

/// The rootfs's passwd entry of `name`, if any.
pub fn rootfs_user(host: &mut Host<'_>, name: &str) -> Result<Option<PasswdEntry>, PluginError> {
    if host.file_kind("etc/passwd")? != Some(FileKind::File) {
        return Ok(None);
    }
    Ok(find_passwd(&String::from_utf8_lossy(&host.read_file("etc/passwd")?), name))
}

/// Whether the rootfs has a group named `name`.
fn rootfs_group(host: &mut Host<'_>, pred: impl Fn(&GroupEntry) -> bool) -> Result<Option<GroupEntry>, PluginError> {
    if host.file_kind("etc/group")? != Some(FileKind::File) {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&host.read_file("etc/group")?).into_owned();
    Ok(text.lines().filter_map(parse_group_line).find(|g| pred(g)))
}

/// Creates a login user with a home and `shell` (`useradd --create-home`),
/// and returns its entry. An existing user is kept (and logged).
pub fn create_user(host: &mut Host<'_>, name: &str, shell: &str) -> Result<PasswdEntry, PluginError> {
    if let Some(existing) = rootfs_user(host, name)? {
        host.info(&format!("user {name} exists in the rootfs already (uid {}): keeping it", existing.uid));
        return Ok(existing);
    }
    let shell = usable_shell(host, shell)?;
    host.run_in_rootfs(&["useradd", "--create-home", "--shell", &shell, name])?;
    rootfs_user(host, name)?
        .ok_or_else(|| PluginError::failed(format!("useradd {name} succeeded but /etc/passwd has no {name}")))
}

/// `shell` when the rootfs has it, else `/bin/bash`, else `/bin/sh`.
fn usable_shell(host: &mut Host<'_>, shell: &str) -> Result<String, PluginError> {
    for candidate in [shell, "/bin/bash", "/bin/sh"] {
        if matches!(host.file_kind(candidate)?, Some(FileKind::File | FileKind::Symlink)) {
            if candidate != shell {
                host.warn(&format!("the shell {shell} is not in the container: using {candidate}"));
            }
            return Ok(candidate.to_owned());
        }
    }
    Ok(shell.to_owned())
}

/// Sets or locks `user`'s password. `Set` feeds `user:password` to
/// `chpasswd` on stdin (never on a command line). `Locked` makes sure the
/// shadow field is locked (`useradd` leaves `!`; an empty field would mean
/// no password at all).
pub fn set_password(host: &mut Host<'_>, user: &str, password: &Password) -> Result<(), PluginError> {
    match password {
        Password::Set(password) => {
            let input = format!("{user}:{password}\n");
            host.run(&CommandSpec::in_rootfs(&["chpasswd"]).stdin(input.as_bytes()))?;
        }
        Password::Locked => {
            if !shadow_is_locked(host, user)? {
                host.run_in_rootfs(&["passwd", "--lock", user])?;
            }
        }
    }
    Ok(())
}

/// Whether `/etc/shadow` has `user` with a locked or no-login password
/// field (`!...` or `*`).
pub fn shadow_is_locked(host: &mut Host<'_>, user: &str) -> Result<bool, PluginError> {
    if host.file_kind("etc/shadow")? != Some(FileKind::File) {
        return Ok(false);
    }
    let text = String::from_utf8_lossy(&host.read_file("etc/shadow")?).into_owned();
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| *name == user)
        .is_some_and(|(_, rest)| rest.starts_with('!') || rest.starts_with('*')))
}

/// Adds `user` to `group`, creating it as a system group when missing.
pub fn add_to_group(host: &mut Host<'_>, user: &str, group: &str) -> Result<(), PluginError> {
    if rootfs_group(host, |g| g.name == group)?.is_none() {
        host.run_in_rootfs(&["groupadd", "--system", group])?;
    }
    host.run_in_rootfs(&["usermod", "--append", "--groups", group, user])?;
    Ok(())
}

/// Checks that a file holds OpenSSH public keys: every line that is not
/// blank or a comment has a key type token (`ssh-ed25519`, `ecdsa-sha2-*`,
/// `sk-*`, ...) followed by base64. Returns the text.
pub fn validate_authorized_keys(source: &str, data: &[u8]) -> Result<String, PluginError> {
    let text = String::from_utf8(data.to_vec()).map_err(|_| {
        PluginError::invalid_input(format!("--auth-key {source} is not a text file of ssh public keys"))
    })?;
    let mut keys = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let typed = tokens.iter().position(|t| {
            t.starts_with("ssh-")
                || t.starts_with("ecdsa-sha2-")
                || t.starts_with("sk-ssh-")
                || t.starts_with("sk-ecdsa-")
        });
        let ok = typed
            .and_then(|i| tokens.get(i + 1))
            .is_some_and(|key| key.len() >= 16 && key.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c)));
        if !ok {
            return Err(PluginError::invalid_input(format!(
                "--auth-key {source} has a line that is not an ssh public key: {}",
                line.chars().take(40).collect::<String>()
            )));
        }
        keys += 1;
    }
    if keys == 0 {
        return Err(PluginError::invalid_input(format!("--auth-key {source} holds no ssh public key")));
    }
    Ok(text)
}

/// Reads and checks an `--auth-key` file on the host.
pub fn read_auth_key(host: &mut Host<'_>, path: &str) -> Result<String, PluginError> {
    match host.host_file_kind(path)? {
        Some(FileKind::File) => {}
        Some(_) => return Err(PluginError::invalid_input(format!("--auth-key {path} is not a regular file"))),
        None => return Err(PluginError::invalid_input(format!("--auth-key {path}: no such file"))),
    }
    let data = host.read_host_file(path)?;
    validate_authorized_keys(path, &data)
}

/// Installs `keys` as `~/.ssh/authorized_keys` of `user`: `.ssh` 0700 and
/// the file 0600, both owned by the user. Returns the rootfs path.
pub fn install_authorized_keys(host: &mut Host<'_>, user: &PasswdEntry, keys: &str) -> Result<String, PluginError> {
    let home = user.home.trim_start_matches('/');
    if home.is_empty() || host.file_kind(home)? != Some(FileKind::Dir) {
        return Err(PluginError::failed(format!("the home {} of {} is not a directory", user.home, user.name)));
    }
    let ssh_dir = format!("{home}/.ssh");
    let file = format!("{ssh_dir}/authorized_keys");
    host.mkdir_all(&ssh_dir, 0o700)?;
    host.set_mode(&ssh_dir, 0o700)?;
    host.set_owner(&ssh_dir, user.uid, user.gid)?;
    host.write_file(&file, keys.as_bytes(), 0o600)?;
    host.set_mode(&file, 0o600)?;
    host.set_owner(&file, user.uid, user.gid)?;
    Ok(file)
}

/// A host user for `--bindhome`, with its primary group if the host has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUser {
    /// The passwd entry.
    pub entry: PasswdEntry,
    /// Its primary group.
    pub group: Option<GroupEntry>,
}

/// Looks a user up on the host (`getent passwd`, so NSS sources count).
pub fn host_user(host: &mut Host<'_>, name: &str) -> Result<Option<HostUser>, PluginError> {
    let out = host.run(&CommandSpec::on_host(&["getent", "passwd", name]).unchecked())?;
    if out.status != 0 {
        return Ok(None);
    }
    let Some(entry) = out.stdout_text().lines().next().and_then(parse_passwd_line) else {
        return Ok(None);
    };
    let group = host.run(&CommandSpec::on_host(&["getent", "group", &entry.gid.to_string()]).unchecked())?;
    let group = if group.status == 0 { group.stdout_text().lines().next().and_then(parse_group_line) } else { None };
    Ok(Some(HostUser { entry, group }))
}

/// Checks a home directory for the bind mount entry: absolute, not `/`, no
/// whitespace or `..` (fields of `lxc.mount.entry` are space-separated).
pub fn validate_bind_home(home: &str, user: &str) -> Result<(), PluginError> {
    let ok = home.starts_with('/')
        && !home.trim_matches('/').is_empty()
        && !home.contains(char::is_whitespace)
        && !home.split('/').any(|p| p == "..");
    if ok {
        Ok(())
    } else {
        Err(PluginError::invalid_input(format!(
            "--bindhome {user}: the home directory '{home}' cannot be bind-mounted (absolute path without spaces)"
        )))
    }
}

/// The `lxc.mount.entry` value that binds a host home into the container.
pub fn bind_home_mount_entry(home: &str) -> String {
    format!("{home} {} none bind 0 0", home.trim_start_matches('/'))
}

/// Makes a host user known in the container for `--bindhome`: its primary
/// group (same gid) when the container has none with that gid, the user with
/// the same uid, gid, comment, home and shell (bash or sh when the shell is
/// not in the container), a **locked** password (the host's password hash
/// is never copied), and the home directory as an empty mount point.
pub fn import_host_user(host: &mut Host<'_>, user: &HostUser) -> Result<PasswdEntry, PluginError> {
    let entry = &user.entry;
    validate_bind_home(&entry.home, &entry.name)?;
    if let Some(existing) = rootfs_user(host, &entry.name)? {
        if existing.uid != entry.uid {
            return Err(PluginError::failed(format!(
                "--bindhome {}: the container has a user {} with uid {}, the host's has uid {}",
                entry.name, entry.name, existing.uid, entry.uid
            )));
        }
        host.mkdir_all(&entry.home, 0o755)?;
        return Ok(existing);
    }
    if rootfs_group(host, |g| g.gid == entry.gid)?.is_none() {
        match &user.group {
            Some(group) if rootfs_group(host, |g| g.name == group.name)?.is_none() => {
                host.run_in_rootfs(&["groupadd", "--gid", &entry.gid.to_string(), &group.name])?;
            }
            _ => host.warn(&format!(
                "--bindhome {}: the host group {} cannot be created in the container; the files keep gid {}",
                entry.name,
                user.group.as_ref().map(|g| g.name.as_str()).unwrap_or("(unknown)"),
                entry.gid
            )),
        }
    }
    let shell = usable_shell(host, &entry.shell)?;
    let group_arg =
        if rootfs_group(host, |g| g.gid == entry.gid)?.is_some() { entry.gid.to_string() } else { "users".into() };
    host.run_in_rootfs(&[
        "useradd",
        "--no-create-home",
        "--home-dir",
        &entry.home,
        "--shell",
        &shell,
        "--uid",
        &entry.uid.to_string(),
        "--gid",
        &group_arg,
        "--comment",
        &entry.gecos,
        &entry.name,
    ])?;
    host.mkdir_all(&entry.home, 0o755)?;
    rootfs_user(host, &entry.name)?
        .ok_or_else(|| PluginError::failed(format!("useradd {} succeeded but /etc/passwd lacks it", entry.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHost, Node, output, with_host};

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host\n";

    /// A responder that acts like useradd/groupadd on the fake rootfs.
    fn fake_useradd(fake: &mut FakeHost) {
        fake.put("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
        fake.put("etc/group", "root:x:0:\nusers:x:100:\n");
        fake.put("etc/shadow", "root:*:19000:0:99999:7:::\n");
        fake.put_program("bin/bash");
        fake.responder = Some(Box::new(|cmd, rootfs| {
            let append = |rootfs: &mut std::collections::BTreeMap<String, Node>, path: &str, line: String| {
                if let Some(Node::File { data, .. }) = rootfs.get_mut(path) {
                    data.extend_from_slice(line.as_bytes());
                }
            };
            match cmd.argv[0].as_str() {
                "useradd" => {
                    let name = cmd.argv.last().unwrap().clone();
                    let arg = |flag: &str| cmd.argv.iter().position(|a| a == flag).map(|i| cmd.argv[i + 1].clone());
                    let uid = arg("--uid").unwrap_or_else(|| "1000".into());
                    let gid = arg("--gid").unwrap_or_else(|| uid.clone());
                    let home = arg("--home-dir").unwrap_or_else(|| format!("/home/{name}"));
                    let shell = arg("--shell").unwrap_or_else(|| "/bin/sh".into());
                    append(rootfs, "etc/passwd", format!("{name}:x:{uid}:{gid}::{home}:{shell}\n"));
                    append(rootfs, "etc/shadow", format!("{name}:!:19000:0:99999:7:::\n"));
                    if cmd.argv.contains(&"--create-home".to_owned()) {
                        rootfs.insert("home".into(), Node::Dir { mode: 0o755 });
                        rootfs.insert(home.trim_start_matches('/').into(), Node::Dir { mode: 0o750 });
                    }
                    Some(output(0, "", ""))
                }
                "groupadd" => {
                    let name = cmd.argv.last().unwrap().clone();
                    let gid =
                        cmd.argv.iter().position(|a| a == "--gid").map_or("999".into(), |i| cmd.argv[i + 1].clone());
                    append(rootfs, "etc/group", format!("{name}:x:{gid}:\n"));
                    Some(output(0, "", ""))
                }
                _ => None,
            }
        }));
    }

    #[test]
    fn passwd_parsing() {
        let entry = parse_passwd_line("alice:x:1000:1000:Alice,,,:/home/alice:/bin/zsh").unwrap();
        assert_eq!(
            (entry.uid, entry.gid, entry.home.as_str(), entry.shell.as_str()),
            (1000, 1000, "/home/alice", "/bin/zsh")
        );
        assert!(parse_passwd_line("bad").is_none());
        assert_eq!(parse_group_line("sudo:x:27:alice").unwrap(), GroupEntry { name: "sudo".into(), gid: 27 });
    }

    #[test]
    fn user_names() {
        assert!(validate_user_name("user", "ubuntu").is_ok());
        assert!(validate_user_name("user", "_svc-1").is_ok());
        for bad in ["", "Ubuntu", "1x", "a b", "a:b", "x".repeat(33).as_str()] {
            assert!(validate_user_name("user", bad).is_err(), "{bad}");
        }
        assert!(validate_user_name("user", "root").unwrap_err().message.contains("lxc-attach"));
    }

    #[test]
    fn passwords() {
        let mut fake = FakeHost::sealed();
        fake.put_host("/pw", "s3cret\nignored\n");
        let choose = |fake: &mut FakeHost, p, f| with_host(fake, |h| choose_password(h, p, f));
        assert_eq!(choose(&mut fake, None, None).unwrap(), Password::Locked);
        assert_eq!(choose(&mut fake, Some("x"), None).unwrap(), Password::Set("x".into()));
        assert_eq!(choose(&mut fake, None, Some("/pw")).unwrap(), Password::Set("s3cret".into()));
        assert!(choose(&mut fake, Some("x"), Some("/pw")).unwrap_err().message.contains("not both"));
        assert!(choose(&mut fake, None, Some("/nope")).unwrap_err().message.contains("no such file"));
        assert_eq!(format!("{:?}", Password::Set("x".into())), "Set(<hidden>)");
    }

    #[test]
    fn user_with_password_on_stdin_and_sudo() {
        let mut fake = FakeHost::sealed();
        fake_useradd(&mut fake);
        let entry = with_host(&mut fake, |h| {
            let entry = create_user(h, "ubuntu", "/bin/bash")?;
            set_password(h, "ubuntu", &Password::Set("pa ss".into()))?;
            add_to_group(h, "ubuntu", "sudo")?;
            Ok::<_, PluginError>(entry)
        })
        .unwrap();
        assert_eq!(entry.home, "/home/ubuntu");
        assert_eq!(
            fake.lines(),
            [
                "useradd --create-home --shell /bin/bash ubuntu",
                "chpasswd",
                "groupadd --system sudo",
                "usermod --append --groups sudo ubuntu"
            ]
        );
        let chpasswd = fake.command("chpasswd").unwrap();
        assert_eq!(chpasswd.stdin, b"ubuntu:pa ss\n");
        assert!(!fake.lines().iter().any(|l| l.contains("pa ss")), "password never on a command line");
    }

    #[test]
    fn locked_password_needs_nothing_after_useradd() {
        let mut fake = FakeHost::sealed();
        fake_useradd(&mut fake);
        with_host(&mut fake, |h| {
            create_user(h, "ubuntu", "/bin/zsh")?;
            set_password(h, "ubuntu", &Password::Locked)
        })
        .unwrap();
        assert_eq!(fake.lines(), ["useradd --create-home --shell /bin/bash ubuntu"]);
        assert!(fake.warnings().iter().any(|w| w.contains("/bin/zsh is not in the container")));
        // An empty field gets locked explicitly.
        fake.put("etc/shadow", "ubuntu::19000:0:99999:7:::\n");
        with_host(&mut fake, |h| set_password(h, "ubuntu", &Password::Locked)).unwrap();
        assert_eq!(fake.lines().last().unwrap(), "passwd --lock ubuntu");
    }

    #[test]
    fn authorized_keys() {
        assert!(validate_authorized_keys("k", KEY.as_bytes()).is_ok());
        assert!(validate_authorized_keys("k", format!("# c\n\nfrom=\"10.0.0.1\" {KEY}").as_bytes()).is_ok());
        assert!(validate_authorized_keys("k", b"").unwrap_err().message.contains("no ssh public key"));
        assert!(validate_authorized_keys("k", b"-----BEGIN OPENSSH PRIVATE KEY-----\n").is_err());

        let mut fake = FakeHost::sealed();
        fake_useradd(&mut fake);
        let entry = with_host(&mut fake, |h| create_user(h, "ubuntu", "/bin/bash")).unwrap();
        let path = with_host(&mut fake, |h| install_authorized_keys(h, &entry, KEY)).unwrap();
        assert_eq!(path, "home/ubuntu/.ssh/authorized_keys");
        assert_eq!(fake.text(&path), KEY);
        assert_eq!(fake.mode(&path), 0o600);
        assert_eq!(fake.mode("home/ubuntu/.ssh"), 0o700);
        assert_eq!(fake.owners[&path], (1000, 1000));
        assert_eq!(fake.owners["home/ubuntu/.ssh"], (1000, 1000));

        fake.put_host("/key.pub", KEY);
        assert!(with_host(&mut fake, |h| read_auth_key(h, "/key.pub")).is_ok());
        assert!(
            with_host(&mut fake, |h| read_auth_key(h, "/missing.pub")).unwrap_err().message.contains("no such file")
        );
    }

    #[test]
    fn bind_home_user_is_imported_locked() {
        let mut fake = FakeHost::sealed();
        fake_useradd(&mut fake);
        fake.on("getent passwd alice", output(0, "alice:x:1500:1500:Alice:/srv/home/alice:/usr/bin/fish\n", ""));
        fake.on("getent group 1500", output(0, "alice:x:1500:\n", ""));
        fake.on("getent passwd nobody-here", output(2, "", ""));
        let user = with_host(&mut fake, |h| host_user(h, "alice")).unwrap().unwrap();
        assert_eq!(user.group.as_ref().unwrap().name, "alice");
        assert!(with_host(&mut fake, |h| host_user(h, "nobody-here")).unwrap().is_none());

        let entry = with_host(&mut fake, |h| import_host_user(h, &user)).unwrap();
        assert_eq!(entry.uid, 1500);
        let lines = fake.lines();
        assert!(lines.contains(&"groupadd --gid 1500 alice".to_owned()), "{lines:?}");
        let useradd = lines.iter().find(|l| l.starts_with("useradd")).unwrap();
        assert!(
            useradd.contains("--no-create-home --home-dir /srv/home/alice --shell /bin/bash --uid 1500"),
            "{useradd}"
        );
        assert!(fake.exists("srv/home/alice"));
        assert!(with_host(&mut fake, |h| shadow_is_locked(h, "alice")).unwrap());
        assert_eq!(bind_home_mount_entry("/srv/home/alice"), "/srv/home/alice srv/home/alice none bind 0 0");
        assert!(validate_bind_home("/home/a b", "a").is_err());
        assert!(validate_bind_home("/", "a").is_err());
    }
}
