//! Which Okta endpoint a path is, which rate-limit bucket it counts against and which scope it needs.

use axum::http::Method;

use crate::auth::Need;
use crate::ratelimit::Bucket;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/api/v1/apps`
    Apps,
    /// `/api/v1/apps/{appId}`
    App(String),
    /// `/api/v1/apps/{appId}/credentials/keys`
    Keys(String),
    /// `/api/v1/apps/{appId}/credentials/keys/generate`
    GenerateKey(String),
    /// `/api/v1/apps/{appId}/credentials/keys/{keyId}`
    Key(String, String),
    /// `/api/v1/apps/{appId}/credentials/keys/{keyId}/clone`
    CloneKey(String, String),
    /// `/api/v1/apps/{appId}/sso/saml/metadata`
    Metadata(String),
    /// `/oauth2/v1/token`
    Token,
    /// Anything else under `/api/v1/apps`: real Okta endpoints the simulator does not serve.
    OtherApps,
    Unknown,
}

impl Route {
    pub fn of(path: &str) -> Route {
        if path == crate::auth::oauth::TOKEN_PATH {
            return Route::Token;
        }
        let Some(rest) = path.strip_prefix("/api/v1/apps") else {
            return Route::Unknown;
        };
        if rest.is_empty() {
            return Route::Apps;
        }
        let Some(rest) = rest.strip_prefix('/') else {
            return Route::Unknown;
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let id = |i: usize| segments[i].to_string();
        match segments.as_slice() {
            [app] if !app.is_empty() => Route::App(id(0)),
            [_, "credentials", "keys"] => Route::Keys(id(0)),
            [_, "credentials", "keys", "generate"] => Route::GenerateKey(id(0)),
            [_, "credentials", "keys", kid] if !kid.is_empty() => Route::Key(id(0), id(3)),
            [_, "credentials", "keys", kid, "clone"] if !kid.is_empty() => Route::CloneKey(id(0), id(3)),
            [_, "sso", "saml", "metadata"] => Route::Metadata(id(0)),
            _ => Route::OtherApps,
        }
    }

    /// Okta's buckets: the app instance alone is `/api/v1/apps/{id}`; everything else under
    /// `/api/v1/apps` shares `/api/v1/apps*`.
    pub fn bucket(&self) -> Bucket {
        match self {
            Route::App(_) => Bucket::AppInstance,
            Route::Token => Bucket::Token,
            Route::Unknown => Bucket::Other,
            _ => Bucket::AppsCollection,
        }
    }

    /// The methods the simulator serves on this path (`None`: the path is not served at all).
    pub fn methods(&self) -> Option<&'static [Method]> {
        Some(match self {
            Route::Apps | Route::Keys(_) | Route::Key(..) | Route::Metadata(_) => &[Method::GET],
            Route::App(_) => &[Method::GET, Method::PUT],
            Route::GenerateKey(_) | Route::CloneKey(..) | Route::Token => &[Method::POST],
            Route::OtherApps | Route::Unknown => return None,
        })
    }

    /// The scope the endpoint requires (per the spec's `security` entries).
    pub fn need(&self, method: &Method) -> Need {
        if method == Method::GET { Need::Read } else { Need::Manage }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_okta_endpoints() {
        let s = |x: &str| x.to_string();
        assert_eq!(Route::of("/api/v1/apps"), Route::Apps);
        assert_eq!(Route::of("/api/v1/apps/0oa1"), Route::App(s("0oa1")));
        assert_eq!(Route::of("/api/v1/apps/0oa1/credentials/keys"), Route::Keys(s("0oa1")));
        assert_eq!(Route::of("/api/v1/apps/0oa1/credentials/keys/generate"), Route::GenerateKey(s("0oa1")));
        assert_eq!(Route::of("/api/v1/apps/0oa1/credentials/keys/k1"), Route::Key(s("0oa1"), s("k1")));
        assert_eq!(Route::of("/api/v1/apps/0oa1/credentials/keys/k1/clone"), Route::CloneKey(s("0oa1"), s("k1")));
        assert_eq!(Route::of("/api/v1/apps/0oa1/sso/saml/metadata"), Route::Metadata(s("0oa1")));
        assert_eq!(Route::of("/api/v1/apps/0oa1/users"), Route::OtherApps);
        assert_eq!(Route::of("/api/v1/appsx"), Route::Unknown);
        assert_eq!(Route::of("/oauth2/v1/token"), Route::Token);
    }

    #[test]
    fn only_the_instance_path_uses_the_instance_bucket() {
        assert_eq!(Route::of("/api/v1/apps/0oa1").bucket(), Bucket::AppInstance);
        assert_eq!(Route::of("/api/v1/apps").bucket(), Bucket::AppsCollection);
        assert_eq!(Route::of("/api/v1/apps/0oa1/credentials/keys").bucket(), Bucket::AppsCollection);
    }
}
