//! The route table: every route the core serves, with what it needs.
//!
//! Each route declares its access rule and the dependencies it cannot work
//! without, so the pipeline can answer 503 before running it and the health
//! report can name the routes an outage affects.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use http::Method;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};

use super::{ApiError, Request, Response};
use crate::app::AccuBooks;
use crate::identity::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no token (monitoring, login).
    Public,
    /// A valid token whose role is at least this one.
    Role(Role),
}

/// Registers a type's schema (and those it refers to) and returns a
/// reference to it, for the OpenAPI document.
pub type SchemaFn = fn(&mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema>;

/// What the OpenAPI document says of a route.
#[derive(Clone, Default)]
pub struct RouteDoc {
    pub(crate) summary: Option<&'static str>,
    pub(crate) body: Option<SchemaFn>,
    pub(crate) returns: Option<(u16, SchemaFn)>,
    pub(crate) query: Vec<QueryParam>,
    /// Other answers: status, description, and whether the body is the
    /// error body (else the route's own, as `/ready`'s `{"status"}`).
    pub(crate) answers: Vec<(u16, &'static str, bool)>,
    /// The success status of a route answering no body (default 200).
    pub(crate) empty_success: Option<u16>,
    /// A list read page by page: `limit` and `after`, and a `Link` header.
    pub(crate) paged: bool,
}

/// A documented query parameter.
#[derive(Clone, Copy)]
pub(crate) struct QueryParam {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) required: bool,
    /// A date (`YYYY-MM-DD`), documented as `format: date`.
    pub(crate) date: bool,
}

fn reference<T: ToSchema>(components: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    T::schemas(components);
    components.push((T::name().into_owned(), T::schema()));
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

fn list_of<T: ToSchema>(components: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    ArrayBuilder::new().items(reference::<T>(components)).into()
}

/// Runs a request that matched a route.
pub trait Handler: Send + Sync + 'static {
    /// Handles the request.
    fn call(
        &self,
        app: AccuBooks,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, ApiError>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(AccuBooks, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    fn call(
        &self,
        app: AccuBooks,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, ApiError>> {
        Box::pin(self(app, request))
    }
}

/// One route.
#[derive(Clone)]
pub struct Route {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) needs: Vec<&'static str>,
    pub(crate) access: Access,
    pub(crate) quiet: bool,
    pub(crate) unlimited: bool,
    /// A smaller body limit than `BODY_LIMIT_BYTES`.
    pub(crate) body_limit: Option<usize>,
    /// The provider of a signed webhook, for its metrics.
    pub(crate) webhook: Option<&'static str>,
    pub(crate) idempotent: bool,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) doc: RouteDoc,
    pub(crate) handler: Arc<dyn Handler>,
}

impl Route {
    /// A read of the books: `GET path`, which needs the database and is open
    /// to every member of the organization.
    pub(crate) fn read(path: &'static str, handler: impl Handler) -> Self {
        Route::new(Method::GET, path, handler).needs(crate::deps::DATABASE)
    }

    /// A change of the books: `method path`, which needs the database and
    /// is for accountants and owners.
    pub(crate) fn change(method: Method, path: &'static str, handler: impl Handler) -> Self {
        Route::new(method, path, handler)
            .needs(crate::deps::DATABASE)
            .access(Access::Role(Role::Accountant))
    }

    /// A route for `method` and `path` (`{name}` marks a parameter), open to
    /// any authenticated user until [`Route::access`] says otherwise.
    pub fn new(method: Method, path: &'static str, handler: impl Handler) -> Self {
        Route {
            method,
            path,
            needs: Vec::new(),
            access: Access::Role(Role::Viewer),
            quiet: false,
            unlimited: false,
            body_limit: None,
            webhook: None,
            idempotent: false,
            timeout: None,
            doc: RouteDoc::default(),
            handler: Arc::new(handler),
        }
    }

    /// Declares a dependency the route cannot work without.
    pub fn needs(mut self, dependency: &'static str) -> Self {
        self.needs.push(dependency);
        self
    }

    /// Sets who may call it.
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// Logs successful requests at debug level only (monitoring endpoints
    /// are polled constantly).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Exempts it from the request rate limits: monitoring (probes and
    /// scrapes must never be refused). Signed webhooks say
    /// [`Route::signed_webhook`], which exempts them too.
    pub fn unlimited(mut self) -> Self {
        self.unlimited = true;
        self
    }

    /// Marks a provider's signed webhook (`provider` as metrics label it):
    /// exempt from the request rate limits (a provider sends bursts from
    /// few addresses; its use case budgets failed signatures per address
    /// instead), and taking bodies of at most `body_limit` bytes (or
    /// `BODY_LIMIT_BYTES` when smaller); a larger one is `413`, counted as
    /// `too_large` in `accubooks_webhook_refused_total`.
    pub fn signed_webhook(mut self, provider: &'static str, body_limit: usize) -> Self {
        self.unlimited = true;
        self.body_limit = Some(body_limit);
        self.webhook = Some(provider);
        self
    }

    /// Documents the `Idempotency-Key` header and its answers (`400`, `409`,
    /// `422`). The handler passes [`Request::key`](super::Request::key) to
    /// its use case, which replays or stores the answer.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Overrides `REQUEST_TIMEOUT_MS` for a route that is long by nature.
    pub fn timeout(mut self, limit: std::time::Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// A one-line description for the OpenAPI document.
    pub fn summary(mut self, summary: &'static str) -> Self {
        self.doc.summary = Some(summary);
        self
    }

    /// Documents the JSON body the route takes.
    pub fn body<T: ToSchema>(mut self) -> Self {
        self.doc.body = Some(reference::<T>);
        self
    }

    /// Documents the JSON answer on success.
    pub fn returns<T: ToSchema>(mut self, status: u16) -> Self {
        self.doc.returns = Some((status, reference::<T>));
        self
    }

    /// Documents a JSON array answer on success.
    pub fn returns_list<T: ToSchema>(mut self, status: u16) -> Self {
        self.doc.returns = Some((status, list_of::<T>));
        self
    }

    /// Documents a list that pages ([`crate::paging`]): the `limit` and
    /// `after` query parameters and the `Link` header of the next page.
    pub fn paged(mut self) -> Self {
        self.doc.paged = true;
        self
    }

    /// Documents a success answer without a body (`204` of a removal).
    pub fn returns_empty(mut self, status: u16) -> Self {
        self.doc.empty_success = Some(status);
        self
    }

    /// Documents an error answer particular to this route.
    pub fn answers(mut self, status: u16, description: &'static str) -> Self {
        self.doc.answers.push((status, description, true));
        self
    }

    /// Documents another answer whose body is the route's own, not the
    /// error body (`/ready` answering 503 `{"status":"starting"}`).
    pub fn answers_too(mut self, status: u16, description: &'static str) -> Self {
        self.doc.answers.push((status, description, false));
        self
    }

    /// Documents a query parameter.
    pub fn query(mut self, name: &'static str, description: &'static str, required: bool) -> Self {
        self.doc.query.push(QueryParam {
            name,
            description,
            required,
            date: false,
        });
        self
    }

    /// Documents a query parameter that is a date, `YYYY-MM-DD`.
    pub fn query_date(
        mut self,
        name: &'static str,
        description: &'static str,
        required: bool,
    ) -> Self {
        self.doc.query.push(QueryParam {
            name,
            description,
            required,
            date: true,
        });
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path template.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// The dependencies it needs.
    pub fn dependencies(&self) -> &[&'static str] {
        &self.needs
    }
}

/// The result of looking a request up.
pub(crate) enum Lookup<'a> {
    Found(&'a Route, Vec<(String, String)>),
    /// The path exists under other methods: these, as an `Allow` value.
    WrongMethod(String),
    Missing,
}

/// All routes, indexed for lookup.
pub struct RouteTable {
    routes: Vec<Route>,
    /// Each path template, and the routes (by index) that serve it.
    templates: Vec<Vec<usize>>,
    /// Path -> its template. One router for every method, so a path is
    /// matched once, the way `matchit` ranks templates: a static segment
    /// wins over a parameter (`/api/journal-entries/batch` is not
    /// `/api/journal-entries/{id}` with the id `batch`), whatever the
    /// method; the method then picks a route of that template, or 405.
    paths: matchit::Router<usize>,
}

impl RouteTable {
    /// Indexes `routes`. Fails on a duplicate or malformed path.
    pub fn new(routes: Vec<Route>) -> crate::Result<Self> {
        let mut templates: Vec<Vec<usize>> = Vec::new();
        let mut by_path: HashMap<&'static str, usize> = HashMap::new();
        let mut paths = matchit::Router::new();
        for (index, route) in routes.iter().enumerate() {
            let setup = |e: &dyn std::fmt::Display| {
                crate::Error::Setup(format!("route {} {}: {e}", route.method, route.path))
            };
            let template = match by_path.get(route.path) {
                Some(&template) => template,
                None => {
                    paths
                        .insert(route.path, templates.len())
                        .map_err(|e| setup(&e))?;
                    by_path.insert(route.path, templates.len());
                    templates.push(Vec::new());
                    templates.len() - 1
                }
            };
            if templates[template]
                .iter()
                .any(|&other| routes[other].method == route.method)
            {
                return Err(setup(&"the method and path are registered twice"));
            }
            templates[template].push(index);
        }
        Ok(RouteTable {
            routes,
            templates,
            paths,
        })
    }

    pub(crate) fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let Ok(found) = self.paths.at(path) else {
            return Lookup::Missing;
        };
        let served = &self.templates[*found.value];
        if let Some(&index) = served.iter().find(|&&i| self.routes[i].method == method) {
            let params = found
                .params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            return Lookup::Found(&self.routes[index], params);
        }
        let mut allowed: Vec<&str> = served
            .iter()
            .map(|&i| self.routes[i].method.as_str())
            .collect();
        allowed.sort_unstable();
        Lookup::WrongMethod(allowed.join(", "))
    }

    /// Whether the core answers this method and path itself (a wrong method
    /// on a known path counts: the core answers 405). Hosts that share a
    /// router use it to leave other paths to their own routes.
    pub fn serves(&self, method: &Method, path: &str) -> bool {
        !matches!(self.lookup(method, path), Lookup::Missing)
    }

    /// Every route, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// `"METHOD /path"` of every route that needs `dependency`.
    pub fn affected_by(&self, dependency: &str) -> Vec<String> {
        self.routes
            .iter()
            .filter(|r| r.needs.contains(&dependency))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn nothing(_: AccuBooks, _: Request) -> Result<Response, ApiError> {
        Err(ApiError::Internal)
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            Route::new(Method::POST, "/api/journal-entries", nothing),
            Route::new(Method::GET, "/api/journal-entries", nothing),
            Route::new(Method::POST, "/api/journal-entries/batch", nothing),
            Route::new(Method::GET, "/api/journal-entries/{id}", nothing),
            Route::new(Method::POST, "/api/journal-entries/{id}/reverse", nothing),
            Route::new(Method::DELETE, "/api/items/{id}", nothing),
            Route::new(Method::GET, "/api/items/{id}", nothing),
        ])
        .unwrap()
    }

    fn found(
        table: &RouteTable,
        method: Method,
        path: &str,
    ) -> (&'static str, Vec<(String, String)>) {
        match table.lookup(&method, path) {
            Lookup::Found(route, params) => (route.path, params),
            Lookup::WrongMethod(allow) => panic!("{method} {path}: 405, allow {allow}"),
            Lookup::Missing => panic!("{method} {path}: 404"),
        }
    }

    fn allow(table: &RouteTable, method: Method, path: &str) -> String {
        match table.lookup(&method, path) {
            Lookup::WrongMethod(allow) => allow,
            Lookup::Found(route, _) => panic!("{method} {path}: found {}", route.path),
            Lookup::Missing => panic!("{method} {path}: 404"),
        }
    }

    #[test]
    fn a_static_segment_wins_over_a_parameter() {
        let table = table();
        assert_eq!(
            found(&table, Method::POST, "/api/journal-entries/batch"),
            ("/api/journal-entries/batch", vec![])
        );
        assert_eq!(
            found(&table, Method::GET, "/api/journal-entries/7"),
            (
                "/api/journal-entries/{id}",
                vec![("id".to_owned(), "7".to_owned())]
            )
        );
        // `batch` is not an entry id: GET is not served there.
        assert_eq!(
            allow(&table, Method::GET, "/api/journal-entries/batch"),
            "POST"
        );
        assert_eq!(
            found(&table, Method::POST, "/api/journal-entries/batch/reverse").0,
            "/api/journal-entries/{id}/reverse"
        );
    }

    #[test]
    fn allow_lists_exactly_the_methods_of_the_path() {
        let table = table();
        assert_eq!(
            allow(&table, Method::OPTIONS, "/api/journal-entries/batch"),
            "POST"
        );
        assert_eq!(
            allow(&table, Method::OPTIONS, "/api/journal-entries/7"),
            "GET"
        );
        assert_eq!(
            allow(&table, Method::PUT, "/api/journal-entries"),
            "GET, POST"
        );
        assert_eq!(allow(&table, Method::POST, "/api/items/x"), "DELETE, GET");
        assert!(matches!(
            table.lookup(&Method::GET, "/api/nothing"),
            Lookup::Missing
        ));
    }

    #[test]
    fn a_method_and_path_registered_twice_is_refused() {
        let twice = RouteTable::new(vec![
            Route::new(Method::GET, "/api/a/{id}", nothing),
            Route::new(Method::GET, "/api/a/{id}", nothing),
        ]);
        assert!(twice.is_err());
        let clash = RouteTable::new(vec![
            Route::new(Method::GET, "/api/a/{id}", nothing),
            Route::new(Method::POST, "/api/a/{name}", nothing),
        ]);
        assert!(clash.is_err(), "one path, two parameter names");
    }
}
