//! The web screens' deployment in `template.yaml` (docs/site.md): a private bucket that only the
//! site's distribution reads (origin access control, no public access, TLS only), and the HTTP
//! API's CORS open to that distribution's origin alone, with the headers the screens send.

mod template;

use serde_yaml::Value;
use template::{get, string_at};

fn resource(template: &Value, id: &str) -> Value {
    get(template, &["Resources", id])
        .unwrap_or_else(|| panic!("template.yaml has no {id}"))
        .clone()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_sequence)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_lowercase))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_site_bucket_is_private_and_read_only_by_the_distribution() {
    let t = template::template();
    let bucket = resource(&t, "SiteBucket");
    assert_eq!(
        string_at(&bucket, &["Type"]).as_deref(),
        Some("AWS::S3::Bucket")
    );
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            get(
                &bucket,
                &["Properties", "PublicAccessBlockConfiguration", flag]
            ),
            Some(&Value::Bool(true)),
            "{flag}"
        );
    }
    assert!(
        get(&bucket, &["Properties", "WebsiteConfiguration"]).is_none(),
        "no public website endpoint"
    );

    let policy = resource(&t, "SiteBucketPolicy");
    let statements = get(&policy, &["Properties", "PolicyDocument", "Statement"])
        .and_then(Value::as_sequence)
        .expect("statements");
    let allows: Vec<&Value> = statements
        .iter()
        .filter(|s| string_at(s, &["Effect"]).as_deref() == Some("Allow"))
        .collect();
    assert_eq!(allows.len(), 1, "one grant: the distribution's reads");
    let allow = allows[0];
    assert_eq!(
        string_at(allow, &["Principal", "Service"]).as_deref(),
        Some("cloudfront.amazonaws.com")
    );
    assert_eq!(
        string_at(allow, &["Action"]).as_deref(),
        Some("s3:GetObject")
    );
    let source = get(
        allow,
        &["Condition", "StringEquals", "AWS:SourceArn", "Fn::Sub"],
    )
    .and_then(Value::as_str)
    .expect("the grant names one distribution by ARN");
    assert!(
        source.ends_with(":distribution/${SiteDistribution}"),
        "{source}"
    );
    assert!(
        statements.iter().any(|s| {
            string_at(s, &["Effect"]).as_deref() == Some("Deny")
                && get(s, &["Condition", "Bool", "aws:SecureTransport"]).is_some()
        }),
        "plain HTTP refused"
    );

    let distribution = resource(&t, "SiteDistribution");
    let origins = get(
        &distribution,
        &["Properties", "DistributionConfig", "Origins"],
    )
    .and_then(Value::as_sequence)
    .expect("origins");
    assert_eq!(
        origins.len(),
        1,
        "the site only: the API is called directly (CORS)"
    );
    assert_eq!(
        string_at(&origins[0], &["OriginAccessControlId", "Fn::GetAtt"]).as_deref(),
        Some("SiteOriginAccessControl.Id"),
        "reads signed by the origin access control"
    );
    let oac = resource(&t, "SiteOriginAccessControl");
    assert_eq!(
        string_at(
            &oac,
            &["Properties", "OriginAccessControlConfig", "SigningBehavior"]
        )
        .as_deref(),
        Some("always")
    );
    assert_eq!(
        string_at(
            &distribution,
            &[
                "Properties",
                "DistributionConfig",
                "DefaultCacheBehavior",
                "ViewerProtocolPolicy"
            ]
        )
        .as_deref(),
        Some("redirect-to-https")
    );
}

#[test]
fn the_api_allows_the_site_origin_alone_with_the_headers_the_screens_send() {
    let t = template::template();
    let api = resource(&t, "HttpApi");
    let cors = get(&api, &["Properties", "CorsConfiguration"]).expect("CORS configuration");
    let origins = get(cors, &["AllowOrigins"])
        .and_then(Value::as_sequence)
        .expect("AllowOrigins");
    assert_eq!(origins.len(), 1, "{origins:?}");
    assert_eq!(
        string_at(&origins[0], &["Fn::Sub"]).as_deref(),
        Some("https://${SiteDistribution.DomainName}"),
        "never *"
    );
    let headers = strings(get(cors, &["AllowHeaders"]));
    // What site/js/api.js sends beyond the CORS-safelisted ones.
    for header in ["authorization", "content-type", "idempotency-key"] {
        assert!(
            headers.contains(&header.to_owned()),
            "{header}: {headers:?}"
        );
    }
    let methods = strings(get(cors, &["AllowMethods"]));
    for method in ["get", "post", "put", "patch", "delete"] {
        assert!(methods.contains(&method.to_owned()), "{method}");
    }
    assert!(
        strings(get(cors, &["ExposeHeaders"])).contains(&"retry-after".to_owned()),
        "the screens read Retry-After"
    );
    // The site as committed calls its own origin (the local server); the upload step points it
    // at the API.
    let config = std::fs::read_to_string(template::root().join("site/js/config.js"))
        .expect("site/js/config.js");
    assert!(config.contains("  apiBase: '',"), "{config}");
}
