//! The typed user client against the real user service.

use contracts::users::{NewUser, UserClient};
use service_client::{Client, ClientSettings, PeerConfig};
use service_kit::config::Secret;
use service_kit::internal_auth::{Caller, Role};
use test_support::{TestDatabase, UserService};

const KEY: &str = "contract-test-user-key";

fn client(url: &str) -> UserClient {
    UserClient::new(
        Client::new(
            "contracts-test",
            PeerConfig::new("user", url, Secret::new(KEY), &ClientSettings::default()),
        )
        .unwrap(),
    )
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        password: "password123".into(),
        name: "Typed".into(),
    }
}

#[tokio::test]
async fn create_get_update_and_batch_lookup_round_trip_through_the_real_service() {
    let db = TestDatabase::create().await;
    let keys = test_support::StreamKeys::new();
    let service = UserService::start(&db, &keys, KEY).await;
    let users = client(&service.url());

    let ada = users
        .create_user(&new_user("ada@example.com"))
        .await
        .unwrap();
    let bob = users
        .create_user(&new_user("bob@example.com"))
        .await
        .unwrap();
    assert_eq!(ada.email, "ada@example.com");
    assert_eq!(ada.roles, ["user"]);

    let as_ada = Caller {
        user_id: ada.id,
        roles: vec![Role::User],
    };
    assert_eq!(
        users.get_user(ada.id, &as_ada).await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        users.get_user(bob.id, &as_ada).await.unwrap(),
        None,
        "another user's profile is not found"
    );

    let renamed = users
        .update_user(ada.id, "Ada L.", &as_ada)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name, "Ada L.");
    assert_eq!(
        users.update_user(bob.id, "Mallory", &as_ada).await.unwrap(),
        None
    );

    let found = users
        .get_users_by_ids(&[ada.id, bob.id, uuid::Uuid::new_v4()])
        .await
        .unwrap();
    let mut ids: Vec<_> = found.iter().map(|u| u.id).collect();
    ids.sort();
    let mut expected = vec![ada.id, bob.id];
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn a_duplicate_registration_is_a_409_the_callers_fault() {
    let db = TestDatabase::create().await;
    let keys = test_support::StreamKeys::new();
    let service = UserService::start(&db, &keys, KEY).await;
    let users = client(&service.url());
    users
        .create_user(&new_user("dup@example.com"))
        .await
        .unwrap();
    let error = users
        .create_user(&new_user("DUP@example.com"))
        .await
        .unwrap_err();
    assert_eq!(error.status().unwrap().as_u16(), 409);
    assert_eq!(error.fault(), service_client::Fault::Downstream);
    assert!(!error.retried());
}
