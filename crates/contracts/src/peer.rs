//! The one definition of a peer's settings, stamped out per peer in [`crate::peers`].

macro_rules! peer_args {
    ($name:ident, $peer:literal, $url:ident, $key:ident, $url_env:literal, $key_env:literal, $default:literal) => {
        #[doc = concat!("Where to find the ", $peer, " service.")]
        #[derive(Debug, Clone, clap::Args)]
        pub struct $name {
            #[arg(
                        long,
                        env = $url_env,
                        default_value = $default,
                        help = concat!("Base URL of the ", $peer, " service.")
                    )]
            pub $url: String,

            #[arg(
                        long,
                        env = $key_env,
                        value_parser = service_kit::config::parse_secret,
                        hide_env_values = true,
                        help = concat!("The ", $peer, " service's key (the bearer key it accepts).")
                    )]
            pub $key: service_kit::config::Secret,
        }

        impl $name {
            #[doc = concat!("How to reach the ", $peer, " service with `settings`.")]
            pub fn peer(
                &self,
                settings: &service_client::ClientSettings,
            ) -> service_client::PeerConfig {
                service_client::PeerConfig::new($peer, &self.$url, self.$key.clone(), settings)
            }

            #[doc = concat!("A client for the ", $peer, " service, calling as `caller`.")]
            pub fn client(
                &self,
                caller: &'static str,
                settings: &service_client::ClientSettings,
            ) -> Result<service_client::Client, service_client::Error> {
                service_client::Client::new(caller, self.peer(settings))
            }
        }
    };
}

pub(crate) use peer_args;
