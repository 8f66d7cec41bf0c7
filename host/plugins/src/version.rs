//! Which `engram:plugin` version a component was built for, and whether this
//! host can run it.

use crate::kind::PluginKind;
use wasmtime::component::Component;
use wasmtime::Engine;

/// The WIT package version this host implements.
pub const WIT_VERSION: semver::Version = semver::Version::new(0, 1, 0);

/// Package name of the plugin interfaces.
pub const PACKAGE: &str = "engram:plugin";

/// Why a component does not fit the slot it was loaded into.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VersionError {
    /// Built against an incompatible `engram:plugin` version.
    #[error(
        "component was built for {PACKAGE}@{found}, but this host implements {PACKAGE}@{WIT_VERSION} \
         (compatible: 0.{}.x); rebuild the plugin against wit/ of this Engram version",
        WIT_VERSION.minor
    )]
    Incompatible {
        /// The version the component declares.
        found: semver::Version,
    },
    /// The component does not export the interface of the requested kind.
    #[error(
        "component does not export {PACKAGE}/{wanted} for a `{kind}` plugin; it exports: [{exports}]"
    )]
    WrongKind {
        /// The kind requested.
        kind: PluginKind,
        /// The interface looked for.
        wanted: &'static str,
        /// What the component exports.
        exports: String,
    },
    /// The component exports no `engram:plugin` behaviour at all.
    #[error("component exports no {PACKAGE} behaviour (judging, ranking, capturing, tools, maintenance); it exports: [{exports}]")]
    NoBehaviour {
        /// What the component exports.
        exports: String,
    },
}

/// Whether `found` can be served by this host (semver, where 0.x minors break).
pub fn compatible(found: &semver::Version) -> bool {
    if WIT_VERSION.major == 0 {
        found.major == 0 && found.minor == WIT_VERSION.minor
    } else {
        found.major == WIT_VERSION.major
    }
}

/// Find the version of the `kind` interface the component exports and check it.
pub fn check(
    engine: &Engine,
    component: &Component,
    kind: PluginKind,
) -> Result<semver::Version, VersionError> {
    let ty = component.component_type();
    let names: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let prefix = format!("{PACKAGE}/{}@", kind.export_interface());
    let unversioned = format!("{PACKAGE}/{}", kind.export_interface());
    for name in &names {
        if let Some(v) = name.strip_prefix(&prefix) {
            let found = semver::Version::parse(v).map_err(|_| VersionError::WrongKind {
                kind,
                wanted: kind.export_interface(),
                exports: names.join(", "),
            })?;
            if !compatible(&found) {
                return Err(VersionError::Incompatible { found });
            }
            return Ok(found);
        }
        if *name == unversioned {
            return Err(VersionError::Incompatible {
                found: semver::Version::new(0, 0, 0),
            });
        }
    }
    // The right interface at another version is a version error, not a kind error.
    Err(VersionError::WrongKind {
        kind,
        wanted: kind.export_interface(),
        exports: names.join(", "),
    })
}

/// Find which kind a component implements (the first `engram:plugin`
/// behaviour interface it exports) and check its version.
pub fn detect(
    engine: &Engine,
    component: &Component,
) -> Result<(PluginKind, semver::Version), VersionError> {
    let ty = component.component_type();
    let names: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    for kind in PluginKind::ALL {
        let prefix = format!("{PACKAGE}/{}", kind.export_interface());
        if names
            .iter()
            .any(|n| n.split('@').next() == Some(prefix.as_str()))
        {
            return check(engine, component, kind).map(|v| (kind, v));
        }
    }
    Err(VersionError::NoBehaviour {
        exports: names.join(", "),
    })
}
