//! The OpenAPI 3.1 document of the whole API, generated from the route
//! table: every route appears with its method, path parameters, access rule,
//! body and answer schemas (derived from the Rust types) and error answers.

use http::{Method, StatusCode};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, Paths};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, Required, ResponseBuilder,
};

use super::route::{Access, RouteTable};
use super::{ApiError, Request, Response, Route, json_response};
use crate::app::AccuBooks;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/api/openapi.json", serve)
            .access(Access::Public)
            .summary("This document"),
    ]
}

async fn serve(app: AccuBooks, _: Request) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, app.openapi()))
}

fn http_method(method: &Method) -> Option<HttpMethod> {
    Some(match *method {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        _ => return None,
    })
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build(),
        )
        .build()
}

/// The `limit` and `after` parameters of a list that pages.
fn paging_parameters(operation: OperationBuilder) -> OperationBuilder {
    use crate::paging::{AFTER_PARAM, DEFAULT_LIMIT, LIMIT_PARAM, MAX_LIMIT};
    operation
        .parameter(
            ParameterBuilder::new()
                .name(LIMIT_PARAM)
                .parameter_in(ParameterIn::Query)
                .description(Some("Most items of the page, 1 to 500; default 100"))
                .required(Required::False)
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1))
                        .maximum(Some(MAX_LIMIT))
                        .default(Some(DEFAULT_LIMIT.into())),
                )),
        )
        .parameter(
            ParameterBuilder::new()
                .name(AFTER_PARAM)
                .parameter_in(ParameterIn::Query)
                .description(Some(
                    "The opaque cursor of the Link header's next URL; absent for the first page",
                ))
                .required(Required::False)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
}

/// The `Link` header of a page after which more remain.
fn next_link_header() -> utoipa::openapi::header::Header {
    utoipa::openapi::header::HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(
            "RFC 8288 link to the next page, present while more items remain: \
             `</path?after=CURSOR&limit=N&…the request's filters…>; rel=\"next\"` \
             (relative to the request's URL)",
        ))
        .build()
}

/// A creating use case's answer has the schema of what it created: a
/// replay answers the first call's JSON of the same type.
impl<T: utoipa::ToSchema> utoipa::PartialSchema for crate::usecases::Answer<T> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        T::schema()
    }
}

impl<T: utoipa::ToSchema> utoipa::ToSchema for crate::usecases::Answer<T> {
    fn name() -> std::borrow::Cow<'static, str> {
        T::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        T::schemas(schemas);
    }
}

/// An account is serialized as `AccountShown`, so that is its schema.
impl utoipa::PartialSchema for crate::ledger::Account {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <crate::ledger::AccountShown<'static> as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for crate::ledger::Account {
    fn name() -> std::borrow::Cow<'static, str> {
        <crate::ledger::AccountShown<'static> as utoipa::ToSchema>::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <crate::ledger::AccountShown<'static> as utoipa::ToSchema>::schemas(schemas);
    }
}

/// Builds the document.
pub fn document(routes: &RouteTable) -> OpenApi {
    let mut schemas = Vec::new();
    let mut paths = Paths::new();
    for route in routes.iter() {
        let Some(method) = http_method(route.method()) else {
            continue;
        };
        let path = route.path();
        let tag = path
            .trim_start_matches("/api/")
            .split('/')
            .next()
            .unwrap_or("api");
        let mut operation = OperationBuilder::new()
            .operation_id(Some(format!(
                "{}{}",
                route.method().as_str().to_lowercase(),
                path.replace(['/', '-', '.'], "_").replace(['{', '}'], "")
            )))
            .summary(route.doc.summary)
            .tag(tag);
        for segment in path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
            }
        }
        for param in &route.doc.query {
            let mut schema = ObjectBuilder::new().schema_type(Type::String);
            if param.date {
                schema = schema.format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)));
            }
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(param.name)
                    .parameter_in(ParameterIn::Query)
                    .description(Some(param.description))
                    .required(if param.required {
                        Required::True
                    } else {
                        Required::False
                    })
                    .schema(Some(schema)),
            );
        }
        if route.doc.paged {
            operation = paging_parameters(operation);
        }
        if route.idempotent {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .description(Some(
                        "Repeating a request with the same key returns the first answer; \
                         the same key with another body is refused (422 IDEMPOTENCY_KEY_REUSED).",
                    ))
                    .required(Required::False)
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(200))
                            .pattern(Some("^[!-~]{1,200}$")),
                    )),
            );
        }
        operation = operation.parameter(
            ParameterBuilder::new()
                .name("X-Request-Id")
                .parameter_in(ParameterIn::Header)
                // No `pattern`: the server refuses no value. A value it
                // does not keep is replaced, and a document that declared a
                // pattern would tell clients and fuzzers a 400 is due.
                .description(Some(
                    "Any value is accepted. One of 1 to 128 letters, digits and `-_.:` is \
                     kept: echoed in the answer's X-Request-Id header, its error body and the \
                     logs. Any other value (or none) is replaced by a generated id, which is \
                     echoed instead.",
                ))
                .required(Required::False)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
        if let Some(body) = route.doc.body {
            let schema = body(&mut schemas);
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(schema)).build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        let success = match route.doc.returns {
            Some((status, schema)) => {
                let schema = schema(&mut schemas);
                let mut response = ResponseBuilder::new().description("Success").content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema)).build(),
                );
                if route.doc.paged {
                    response = response.header("Link", next_link_header());
                }
                (status.to_string(), response.build())
            }
            None => (
                route.doc.empty_success.unwrap_or(200).to_string(),
                ResponseBuilder::new().description("Success").build(),
            ),
        };
        operation = operation.response(success.0, success.1);
        if let Access::Role(role) = route.access {
            operation = operation
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .response(
                    "401",
                    error_response("No token, or an invalid or expired one"),
                )
                .response(
                    "403",
                    error_response(match role {
                        crate::identity::Role::Viewer => "Never for a valid token",
                        crate::identity::Role::Accountant => "The token's role is viewer",
                        crate::identity::Role::Owner => "The token's role is not owner",
                    }),
                );
        }
        if route.doc.body.is_some() {
            operation = operation
                .response("400", error_response("Malformed JSON"))
                .response("413", error_response("Body larger than BODY_LIMIT_BYTES"))
                .response("415", error_response("A body that is not application/json"))
                .response("422", error_response("Valid JSON with invalid content"));
        }
        if !route.unlimited {
            operation = operation.response(
                "429",
                error_response(
                    "Over the request budget of the client address (RATE_LIMIT_PER_ADDRESS) \
                     or of the token's user (RATE_LIMIT_PER_TOKEN); retry after Retry-After",
                ),
            );
        }
        if let (Some(_), Some(limit)) = (route.webhook, route.body_limit) {
            operation = operation
                .response(
                    "413",
                    error_response(&format!(
                        "Body larger than {limit} bytes (or BODY_LIMIT_BYTES when smaller)"
                    )),
                )
                .response(
                    "429",
                    error_response(&format!(
                        "This client address sent more than {} requests with a refused \
                         signature (one more is allowed every {} s); refused before any \
                         signature is checked; retry after Retry-After (RATE_LIMITED)",
                        crate::throttle::WEBHOOK_SIGNATURE_FAILURES,
                        crate::throttle::WEBHOOK_SIGNATURE_REFILL.as_secs()
                    )),
                );
        }
        if path.contains('{') {
            operation =
                operation.response("404", error_response("Absent, or another organization's"));
        }
        if route.doc.paged {
            operation = operation.response(
                "422",
                error_response(
                    "A query parameter is missing, unknown or invalid: limit outside 1 to 500 \
                     (INVALID_LIMIT), an after cursor this list did not answer (INVALID_CURSOR)",
                ),
            );
        } else if !route.doc.query.is_empty() {
            operation = operation.response(
                "422",
                error_response("A query parameter is missing, unknown or invalid"),
            );
        }
        if route.idempotent {
            operation = operation
                .response("400", error_response("A malformed Idempotency-Key"))
                .response(
                    "409",
                    error_response(
                        "A conflict with the current state, or the first request with this \
                         Idempotency-Key is still being answered (IDEMPOTENCY_KEY_IN_PROGRESS)",
                    ),
                )
                .response(
                    "422",
                    error_response(
                        "Invalid content, or an Idempotency-Key reused with another request",
                    ),
                );
        }
        if !route.dependencies().is_empty() {
            operation = operation.response(
                "503",
                error_response(
                    "A dependency is down (e.g. DATABASE_UNAVAILABLE), or a provider the route \
                     needs is not configured (PAYMENTS_NOT_CONFIGURED, \
                     BANK_INTEGRATION_NOT_CONFIGURED); retry after Retry-After",
                ),
            );
        }
        // The route's own answers come last and name their codes first: a
        // generic answer of the same status (an idempotent route's 422) is
        // kept after them rather than hiding them.
        let mut operation = operation.build();
        for (status, description, error_body) in &route.doc.answers {
            let responses = &mut operation.responses.responses;
            let generic = match responses.get(&status.to_string()) {
                Some(utoipa::openapi::RefOr::T(generic)) if *error_body => {
                    Some(generic.description.clone())
                }
                _ => None,
            };
            let response = match generic {
                Some(generic) => error_response(&format!("{description}; or: {generic}")),
                None if *error_body => error_response(description),
                None => ResponseBuilder::new().description(*description).build(),
            };
            responses.insert(status.to_string(), response.into());
        }
        paths.add_path_operation(path, vec![method], operation);
    }
    let error = ObjectBuilder::new()
        .property(
            "error",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("A sentence for people")),
        )
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("A stable machine code")),
        )
        .property("request_id", ObjectBuilder::new().schema_type(Type::String))
        .required("error")
        .required("code")
        .required("request_id");
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .schema("Error", error)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("AccuBooks")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "A resilient double-entry accounting API. Money is always a decimal string.",
                )),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}
