//! Events per minute over the last hour, drawn as SVG: one line per stream (its
//! partitions added up) and one for orders (`order.created`). maud escapes every
//! value it writes, so a stream name cannot become markup.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, Utc};
use contracts::ops::MinuteCount;
use maud::{Markup, html};

const MINUTES: usize = 60;
const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 330.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 28.0;
const COLOURS: [&str; 6] = [
    "#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2",
];

/// The stream a partition belongs to, without the deployment's prefix:
/// `{p:events:order:2}` → `events:order`.
pub fn stream_of(partition: &str) -> &str {
    let stream = match partition
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
    {
        Some(inner) => inner
            .rsplit_once(':')
            .filter(|(_, index)| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
            .map_or(inner, |(stream, _)| stream),
        None => partition,
    };
    // `EVENT_STREAM_PREFIX` is the same on every stream: the legend leaves it out.
    stream
        .rfind("events:")
        .map_or(stream, |start| &stream[start..])
}

/// Per-minute series over the hour before `now`, oldest minute first.
fn series(counts: &[MinuteCount], now: DateTime<Utc>) -> BTreeMap<String, [i64; MINUTES]> {
    let this_minute = now
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or(now);
    let mut series: BTreeMap<String, [i64; MINUTES]> = BTreeMap::new();
    for count in counts {
        let ago = (this_minute - count.minute).num_minutes();
        let Ok(ago) = usize::try_from(ago) else {
            continue;
        };
        if ago >= MINUTES {
            continue;
        }
        let slot = MINUTES - 1 - ago;
        series
            .entry(format!("{} events", stream_of(&count.stream)))
            .or_insert([0; MINUTES])[slot] += count.events;
        if count.event_type == "order.created" {
            series.entry("orders".to_owned()).or_insert([0; MINUTES])[slot] += count.events;
        }
    }
    series
}

/// The chart as an SVG document.
pub fn throughput(counts: &[MinuteCount], now: DateTime<Utc>) -> String {
    let series = series(counts, now);
    let peak = series
        .values()
        .flat_map(|values| values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let x = |minute: usize| LEFT + plot_width * minute as f64 / (MINUTES - 1) as f64;
    let y = |value: i64| TOP + plot_height * (1.0 - value as f64 / peak as f64);
    let svg: Markup = html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT)
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } font-family="sans-serif" font-size="11" {
            title { "Events per minute over the last hour" }
            rect x="0" y="0" width=(WIDTH) height=(HEIGHT) fill="#ffffff" {}
            line x1=(LEFT) y1=(TOP + plot_height) x2=(LEFT + plot_width) y2=(TOP + plot_height) stroke="#9aa4b2" {}
            line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(TOP + plot_height) stroke="#9aa4b2" {}
            text x=(LEFT - 6.0) y=(TOP + 4.0) text-anchor="end" { (peak) }
            text x=(LEFT + 6.0) y=(TOP + 4.0) fill="#6b7280" {
                "per minute (peak " (format!("{:.2}", peak as f64 / 60.0)) " per second)"
            }
            text x=(LEFT - 6.0) y=(TOP + plot_height) text-anchor="end" { "0" }
            text x=(LEFT) y=(HEIGHT - 8.0) { "60 min ago" }
            text x=(LEFT + plot_width) y=(HEIGHT - 8.0) text-anchor="end" { "now (per minute)" }
            @if series.is_empty() {
                text x=(LEFT + plot_width / 2.0) y=(TOP + plot_height / 2.0) text-anchor="middle" fill="#6b7280" {
                    "No events in the last hour"
                }
            }
            @for (index, (name, values)) in series.iter().enumerate() {
                @let colour = COLOURS[index % COLOURS.len()];
                @let points = values.iter().enumerate()
                    .map(|(minute, value)| format!("{:.1},{:.1}", x(minute), y(*value)))
                    .collect::<Vec<_>>().join(" ");
                polyline points=(points) fill="none" stroke=(colour) stroke-width="2" {}
                rect x=(WIDTH - RIGHT + 12.0) y=(TOP + 18.0 * index as f64) width="10" height="10" fill=(colour) {}
                text x=(WIDTH - RIGHT + 28.0) y=(TOP + 9.0 + 18.0 * index as f64) {
                    (name) " (" (values.iter().sum::<i64>()) ")"
                }
            }
        }
    };
    svg.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(stream: &str, event_type: &str, minute: DateTime<Utc>, events: i64) -> MinuteCount {
        MinuteCount {
            stream: stream.to_owned(),
            event_type: event_type.to_owned(),
            minute,
            events,
        }
    }

    #[test]
    fn partitions_add_up_to_their_stream_and_orders_are_counted_apart() {
        let now = Utc::now();
        let minute = now.duration_trunc(chrono::Duration::minutes(1)).unwrap();
        let counts = [
            count("{p:events:order:0}", "order.created", minute, 3),
            count("{p:events:order:1}", "order.created", minute, 4),
            count(
                "p:events:payment",
                "payment.succeeded",
                minute - chrono::Duration::minutes(2),
                5,
            ),
            count(
                "p:events:payment",
                "payment.succeeded",
                minute - chrono::Duration::hours(2),
                99,
            ),
        ];
        let series = series(&counts, now);
        assert_eq!(series["events:order events"][MINUTES - 1], 7);
        assert_eq!(series["orders"][MINUTES - 1], 7);
        assert_eq!(series["events:payment events"][MINUTES - 3], 5);
        assert_eq!(
            series["events:payment events"].iter().sum::<i64>(),
            5,
            "older than an hour is left out"
        );
    }

    #[test]
    fn a_stream_name_is_text_in_the_chart_never_markup() {
        let now = Utc::now();
        let svg = throughput(&[count("<script>x</script>", "t", now, 1)], now);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;x&lt;/script&gt;"), "{svg}");
    }

    #[test]
    fn partition_names_map_to_their_stream() {
        assert_eq!(stream_of("{events:order:2}"), "events:order");
        assert_eq!(stream_of("events:order"), "events:order");
        assert_eq!(stream_of("{events:order}"), "events:order");
        assert_eq!(stream_of("{test:1:events:order:0}"), "events:order");
        assert_eq!(stream_of("test:1:events:order"), "events:order");
    }
}
