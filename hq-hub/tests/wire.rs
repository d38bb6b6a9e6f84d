//! What a sub-project's definition looks like on the wire: every field type travels as
//! itself (text, single choice, number, date, multiple choice), and the parameters the
//! definition has no room for (popup timing, status, calling windows) follow it as a
//! `DownEvent::ProjectSettings` of the same version, on every participating site's log.

use anyhow::Result;
use sync_protocol::{CallingWindow, DownEvent, FieldKind};

use hq_hub::store::{
    CallingWindow as HubWindow, FieldSpec, FieldSpecKind, NewProject, PhoneMode, PopupTiming, ProjectEdit, ProjectSettings,
    ProjectStatus, Store,
};

fn down(store: &Store, site: i64) -> Result<Vec<DownEvent>> {
    Ok(store.down_log(site, 0, 10_000)?.into_iter().map(|e| e.event).collect())
}

#[test]
fn field_types_and_settings_go_down_as_themselves() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let site = store.create_site("一号职场")?;
    let category = store.create_category("套餐类")?;
    let settings = ProjectSettings {
        popup_timing: Some(PopupTiming::OnRing),
        status: Some(ProjectStatus::Paused),
        calling_windows: vec![
            HubWindow { start: "09:00".into(), end: "12:00".into() },
            HubWindow { start: "13:30".into(), end: "18:00".into() },
        ],
        ..ProjectSettings::default()
    };
    let new = NewProject {
        category_id: category,
        name: "5G升级".into(),
        template_id: None,
        script: String::new(),
        hide_middle_digits: true,
        customer_fields: vec![FieldSpec::text("name", "客户姓名")],
        record_fields: vec![
            FieldSpec::new("result", "本次业务结果", FieldSpecKind::SingleChoice, &["成功", "失败"]),
            FieldSpec::new("amount", "金额", FieldSpecKind::Number, &[]),
            FieldSpec::new("visit", "回访日期", FieldSpecKind::Date, &[]),
            FieldSpec::new("needs", "需求", FieldSpecKind::MultipleChoice, &["宽带", "电视", "手机"]),
        ],
        settings,
        phone_mode: PhoneMode::Number,
    };
    let project = store.create_project(&new)?;
    store.set_project_sites(project, &[site])?;

    let events = down(&store, site)?;
    let def = events.iter().find_map(|e| if let DownEvent::Project(d) = e { Some(d.clone()) } else { None }).expect("definition sent");
    let kinds: Vec<FieldKind> = def.record_fields.iter().map(|f| f.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            FieldKind::SingleChoice(vec!["成功".into(), "失败".into()]),
            FieldKind::Number,
            FieldKind::Date,
            FieldKind::MultipleChoice(vec!["宽带".into(), "电视".into(), "手机".into()]),
        ]
    );
    let position = |want: fn(&DownEvent) -> bool| events.iter().position(want).expect("event present");
    let settings_at = position(|e| matches!(e, DownEvent::ProjectSettings(_)));
    assert_eq!(settings_at, position(|e| matches!(e, DownEvent::Project(_))) + 1, "settings follow the definition");
    let DownEvent::ProjectSettings(sent) = &events[settings_at] else { unreachable!("matched above") };
    assert_eq!(sent.project_id, project as u64);
    assert_eq!(sent.version, def.version);
    assert_eq!(sent.popup_on_ring, Some(true));
    assert_eq!(sent.running, Some(false));
    assert_eq!(
        sent.calling_windows,
        vec![CallingWindow { start_minute: 540, end_minute: 720 }, CallingWindow { start_minute: 810, end_minute: 1080 }]
    );

    // Unsetting them sends a new version that leaves everything to the site.
    let current = store.project(project)?.expect("project");
    let edit = ProjectEdit {
        name: current.name,
        script: current.script,
        hide_middle_digits: current.hide_middle_digits,
        customer_fields: current.customer_fields,
        record_fields: current.record_fields,
        settings: ProjectSettings::default(),
        phone_mode: current.phone_mode,
    };
    store.update_project(project, &edit)?;
    let last = down(&store, site)?.into_iter().rev().find_map(|e| if let DownEvent::ProjectSettings(s) = e { Some(s) } else { None });
    let last = last.expect("settings re-sent");
    assert_eq!(last.version, def.version + 1);
    assert_eq!((last.popup_on_ring, last.running, last.calling_windows.len()), (None, None, 0));
    Ok(())
}
