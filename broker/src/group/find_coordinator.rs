//! FindCoordinator: this single broker coordinates every group.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::rebalance::NONE;
use super::GroupCoordinator;

/// `key_type` of a consumer group.
pub const KEY_TYPE_GROUP: i8 = 0;
/// `key_type` of a transactional id.
pub const KEY_TYPE_TRANSACTION: i8 = 1;

/// Where a key is coordinated, or why not.
struct Answer {
    error: i16,
    message: Option<String>,
    node_id: i32,
    host: String,
    port: i32,
}

impl GroupCoordinator {
    /// Handles FindCoordinator (v0-v6). Groups are coordinated here; transactions are not
    /// supported by this broker (`COORDINATOR_NOT_AVAILABLE`, with a message saying so).
    pub async fn find_coordinator(
        &self,
        version: i16,
        request: FindCoordinatorRequest,
    ) -> FindCoordinatorResponse {
        let key_type = if version >= 1 {
            request.key_type
        } else {
            KEY_TYPE_GROUP
        };
        if version >= 4 {
            let coordinators = request
                .coordinator_keys
                .into_iter()
                .map(|key| {
                    let answer = self.coordinator_for(key_type);
                    Coordinator::default()
                        .with_key(key)
                        .with_node_id(BrokerId(answer.node_id))
                        .with_host(StrBytes::from_string(answer.host))
                        .with_port(answer.port)
                        .with_error_code(answer.error)
                        .with_error_message(answer.message.map(StrBytes::from_string))
                })
                .collect();
            return FindCoordinatorResponse::default().with_coordinators(coordinators);
        }
        let answer = self.coordinator_for(key_type);
        let mut response = FindCoordinatorResponse::default()
            .with_error_code(answer.error)
            .with_node_id(BrokerId(answer.node_id))
            .with_host(StrBytes::from_string(answer.host))
            .with_port(answer.port);
        if version >= 1 {
            response = response.with_error_message(answer.message.map(StrBytes::from_string));
        }
        response
    }

    fn coordinator_for(&self, key_type: i8) -> Answer {
        let unavailable = |error: ResponseError, message: &str| Answer {
            error: error.code(),
            message: Some(message.to_owned()),
            node_id: -1,
            host: String::new(),
            port: -1,
        };
        match key_type {
            KEY_TYPE_GROUP => Answer {
                error: NONE,
                message: None,
                node_id: self.config.node_id,
                host: self.config.advertised_host.clone(),
                port: self.config.advertised_port,
            },
            KEY_TYPE_TRANSACTION => unavailable(
                ResponseError::CoordinatorNotAvailable,
                "transactions are not supported by this broker",
            ),
            _ => unavailable(
                ResponseError::InvalidRequest,
                "unknown coordinator key type (0 = group, 1 = transaction)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn groups_are_coordinated_here_in_every_version() {
        let f = Fixture::new(GroupConfig {
            advertised_host: "broker.local".to_owned(),
            advertised_port: 19092,
            ..test_config()
        });
        let v0 = f
            .c()
            .find_coordinator(0, FindCoordinatorRequest::default().with_key(str(GROUP)))
            .await;
        assert_eq!(
            (v0.error_code, v0.node_id.0, v0.host.as_str(), v0.port),
            (0, 0, "broker.local", 19092)
        );
        let v4 = f
            .c()
            .find_coordinator(
                4,
                FindCoordinatorRequest::default().with_coordinator_keys(vec![str("g1"), str("g2")]),
            )
            .await;
        assert_eq!(v4.coordinators.len(), 2);
        assert_eq!(v4.coordinators[1].key.as_str(), "g2");
        assert_eq!(v4.coordinators[1].port, 19092);
        let txn = f
            .c()
            .find_coordinator(
                6,
                FindCoordinatorRequest::default()
                    .with_key_type(KEY_TYPE_TRANSACTION)
                    .with_coordinator_keys(vec![str("tx")]),
            )
            .await;
        assert_eq!(
            txn.coordinators[0].error_code,
            ResponseError::CoordinatorNotAvailable.code()
        );
        let bad = f
            .c()
            .find_coordinator(2, FindCoordinatorRequest::default().with_key_type(9))
            .await;
        assert_eq!(bad.error_code, ResponseError::InvalidRequest.code());
    }
}
