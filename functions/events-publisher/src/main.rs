use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    // Only the bus name is needed here, so this function does not read the API's configuration
    // (which insists on a JWT secret in production).
    let bus = std::env::var("EVENT_BUS_NAME").unwrap_or_else(|_| "cafe".to_owned());
    let endpoint = std::env::var("EVENTBRIDGE_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    let timeout = std::env::var("DEPENDENCY_TIMEOUT_MS")
        .ok()
        .and_then(|ms| ms.trim().parse().ok())
        .map_or(
            std::time::Duration::from_secs(3),
            std::time::Duration::from_millis,
        );
    let aws = cafe::aws::Aws::load(endpoint.as_deref(), timeout).await;
    let publisher = cafe::events::EventBridgePublisher::from_aws(&aws, bus);
    let metrics = cafe::metrics::Metrics::new(&cafe::metrics::MetricsConfig::from_env()?);
    run(service_fn(|event: LambdaEvent<Event>| {
        let (publisher, metrics) = (&publisher, &metrics);
        async move {
            Ok::<_, Error>(events_publisher::handle(event.payload, publisher, metrics).await)
        }
    }))
    .await
}
