//! The demo tenant's sample knowledge base: three store policies that match the demo page, so
//! the offline responder's replies quote a real passage. Seeded once, when the tenant has none.

use crate::domain::TenantId;
use crate::error::Result;
use crate::knowledge::{Format, Upload, ops};
use crate::store::Store;

const SAMPLES: &[(&str, Format, &str)] = &[
    (
        "Shipping",
        Format::Markdown,
        "# Shipping\n\nShipping is free on orders over $50; smaller orders ship for a flat $5.95. \
         Orders placed before 2pm leave our warehouse the same day and usually arrive within 3 to 5 \
         business days. Every parcel gets a tracking number by e-mail as soon as it ships.\n\n\
         Tents and other bulky items ship separately and may take one extra day.",
    ),
    (
        "Returns and refunds",
        Format::Markdown,
        "# Returns and refunds\n\nReturns are accepted within 30 days of purchase with your receipt \
         or order number. Gear must be unused and in its original packaging; used tents and stoves \
         can be returned only if they are faulty.\n\nRefunds go back to the original payment method \
         within 5 business days after we receive the return.",
    ),
    (
        "Opening hours",
        Format::Html,
        "<h1>Opening hours</h1><p>Our store is open Monday to Saturday, 9am to 6pm, and closed on \
         Sundays and public holidays.</p><p>Phone support answers during the same hours.</p>",
    ),
];

/// Adds the sample documents unless the demo tenant already has documents.
pub async fn seed(store: &Store, tenant: &TenantId) -> Result<()> {
    if !ops::list(store, tenant).await?.is_empty() {
        return Ok(());
    }
    for (title, format, text) in SAMPLES {
        let upload = Upload {
            title: (*title).to_owned(),
            text: (*text).to_owned(),
            format: *format,
            url: None,
        };
        ops::add(store, tenant, "demo", upload).await?;
    }
    Ok(())
}
