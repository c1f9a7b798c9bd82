/** The Participants tree: role, status, file:line, who follows whom, inline actions. */
import * as vscode from "vscode";
import { participantRows, type ParticipantRow } from "../core/participants";
import type { Participant } from "../core/protocol";

export class ParticipantItem extends vscode.TreeItem {
  constructor(readonly row: ParticipantRow) {
    super(row.label, vscode.TreeItemCollapsibleState.None);
    this.id = row.userId;
    this.description = row.description;
    this.tooltip = row.tooltip;
    this.contextValue = row.contextValue;
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><circle cx="8" cy="8" r="${row.online ? 6 : 4}" fill="${row.color}"/></svg>`;
    this.iconPath = vscode.Uri.parse(`data:image/svg+xml;utf8,${encodeURIComponent(svg)}`);
  }
}

export class ParticipantsView implements vscode.TreeDataProvider<ParticipantItem> {
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.emitter.event;
  private rows: ParticipantRow[] = [];
  private lastKey = "";

  update(participants: Participant[], following: string | null): void {
    const rows = participantRows(participants, following);
    const key = JSON.stringify(rows);
    if (key === this.lastKey) return; // participants arrive on every presence change: redraw only on change
    this.lastKey = key;
    this.rows = rows;
    this.emitter.fire();
  }

  getTreeItem(item: ParticipantItem): vscode.TreeItem {
    return item;
  }

  getChildren(): ParticipantItem[] {
    return this.rows.map((r) => new ParticipantItem(r));
  }
}
