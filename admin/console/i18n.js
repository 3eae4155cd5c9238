// Console texts: Chinese (default) and English. The choice persists in localStorage.
export const LANGS = [['zh', '中文'], ['en', 'English']];
const KEY = 'herald.lang';

const zh = {
  'app.subtitle': '管理控制台',
  'app.apiDocs': 'API 参考（OpenAPI）',
  'common.allStatuses': '全部状态', 'common.back': '返回', 'common.cancel': '取消', 'common.close': '关闭',
  'common.confirm': '请确认', 'common.copied': '已复制到剪贴板', 'common.copy': '复制', 'common.createdAt': '创建时间',
  'common.createdBy': '创建人', 'common.delete': '删除', 'common.deleted': '已删除', 'common.disable': '停用',
  'common.disabled': '已停用', 'common.done': '完成', 'common.edit': '编辑', 'common.empty': '暂无数据',
  'common.enable': '启用', 'common.enabled': '已启用', 'common.language': '语言', 'common.loading': '加载中…',
  'common.name': '名称', 'common.number': '编号', 'common.ok': '确定', 'common.range': '第 {from}–{to} 条，共 {total} 条',
  'common.refresh': '刷新', 'common.remove': '移除', 'common.reset': '重置', 'common.save': '保存', 'common.saved': '已保存',
  'common.search': '搜索', 'common.status': '状态', 'common.title': '标题', 'common.updatedAt': '更新时间', 'common.view': '查看',

  'menu.directory': '通讯录', 'menu.apps': '应用市场', 'menu.roles': '角色权限', 'menu.pushes': '消息推送',
  'menu.tiered': '分级推送', 'menu.accounts': '账户设置', 'menu.cost': '费用管理', 'menu.reports': '报表',

  'login.title': '登录', 'login.login': '登录名', 'login.password': '密码', 'login.submit': '登录', 'login.link': '已有账号？去登录',
  'login.logout': '退出登录',
  'register.title': '企业注册', 'register.enterprise': '企业名称', 'register.adminName': '管理员姓名', 'register.adminLogin': '管理员登录名',
  'register.password': '密码', 'register.passwordHint': '至少 10 个字符', 'register.email': '邮箱', 'register.mobile': '手机号',
  'register.submit': '注册', 'register.link': '没有账号？企业注册', 'register.done': '注册成功，请登录',

  'err.network': '无法连接服务器', 'err.session': '会话已过期，请重新登录', 'err.title': '出错了',
  'err.forbiddenTitle': '无权访问', 'err.forbidden': '您没有访问此页面的权限。',
  'home.title': '欢迎使用 Herald', 'home.noMenus': '您的角色没有任何菜单权限，请联系管理员。',

  'dir.units': '组织架构', 'dir.addChild': '新建下级', 'dir.addChildOf': '在“{unit}”下新建部门', 'dir.rename': '重命名',
  'dir.move': '移动', 'dir.moveUnit': '移动“{unit}”', 'dir.newParent': '新的上级部门', 'dir.confirmDelete': '确定删除部门“{unit}”？',
  'users.title': '用户', 'users.inUnit': '{unit} 的用户（含下级）', 'users.add': '新建用户', 'users.edit': '编辑用户',
  'users.login': '登录名', 'users.password': '密码', 'users.passwordKeep': '留空则不修改', 'users.currentPassword': '当前密码（修改本人密码或登录名时必填）', 'users.mobile': '手机号', 'users.email': '邮箱',
  'users.wecom': '企业微信 ID', 'users.dingtalk': '钉钉 ID', 'users.welink': 'WeLink ID', 'users.unit': '所属部门', 'users.roles': '角色',
  'users.searchPh': '姓名、登录名、手机号或邮箱', 'users.confirmDelete': '确定删除用户“{name}”？',

  'app.messaging.name': '消息推送', 'app.messaging.desc': '通过邮件、短信、语音和即时通讯发送消息；启用时签发 API 密钥。',
  'app.tiered-push.name': '分级推送', 'app.tiered-push.desc': '按级别、渠道和升级规则推送告警与通知。',
  'app.reports.name': '报表', 'app.reports.desc': '按渠道、日期、推送和动作统计送达、失败、确认与费用。',
  'apps.enable': '启用', 'apps.enabled': '已启用', 'apps.enabledAt': '已于 {at} 由 {by} 启用', 'apps.notEnabled': '未启用',
  'apps.keys': 'API 密钥', 'apps.createKey': '新建密钥', 'apps.prefix': '前缀', 'apps.revoke': '吊销', 'apps.revoked': '密钥已吊销',
  'apps.confirmRevoke': '吊销后使用该密钥的调用将被拒绝，确定吊销？', 'apps.keyTitle': 'API 密钥',
  'apps.keyOnce': '密钥只显示这一次，请立即复制并妥善保存。',

  'roles.list': '角色列表', 'roles.add': '新建角色', 'roles.edit': '编辑角色', 'roles.perms': '功能权限', 'roles.data': '数据权限',
  'roles.allUnits': '全部部门', 'roles.someUnits': '指定部门（含下级）', 'roles.confirmDelete': '确定删除角色“{name}”？',
  'perm.kind.menu': '菜单', 'perm.kind.button': '按钮',
  'perm.directory.view': '查看通讯录', 'perm.directory.edit': '编辑通讯录', 'perm.apps.view': '查看应用', 'perm.apps.manage': '管理应用与密钥',
  'perm.roles.view': '查看角色', 'perm.roles.manage': '管理角色', 'perm.push.view': '查看推送', 'perm.push.edit': '编辑推送',
  'perm.push.send': '启用/停用/发送推送', 'perm.tiered.view': '查看分级推送', 'perm.tiered.edit': '编辑分级推送',
  'perm.accounts.view': '查看账户', 'perm.accounts.edit': '编辑账户', 'perm.cost.view': '查看费用', 'perm.cost.manage': '费用告警设置',
  'perm.reports.view': '查看报表', 'perm.users.password': '重置他人密码与登录名',

  'push.list': '推送列表', 'push.add': '新建推送', 'push.view': '查看/编辑推送', 'push.create': '创建', 'push.channel': '渠道',
  'push.account': '发送账户', 'push.pickAccount': '请选择账户', 'push.content': '内容', 'push.subject': '主题', 'push.body': '正文',
  'push.text': '文本内容', 'push.targets': '推送对象', 'push.advanced': '高级设置', 'push.now': '立即发送', 'push.at': '定时发送',
  'push.enableOnSave': '保存后启用', 'push.schedule': '发送时间', 'push.deliveries': '发送状态', 'push.messageId': '消息 ID',
  'push.confirmDelete': '确定删除推送 {number}？', 'push.deleteHint': '仅停用后可删除', 'push.copied': '已复制为 {number}',
  'push.saved': '推送 {number} 已保存', 'push.sentReadonly': '该推送已发送，不能再编辑。',
  'status.draft': '草稿', 'status.scheduled': '已排期', 'status.sent': '已发送', 'status.disabled': '已停用',
  'dstatus.queued': '排队中', 'dstatus.sending': '发送中', 'dstatus.sent': '已发送', 'dstatus.delivered': '已送达', 'dstatus.read': '已读',
  'dstatus.failed': '失败', 'dstatus.retrying': '重试中', 'dstatus.expired': '已过期', 'dstatus.cancelled': '已取消',
  'deliv.recipient': '接收人', 'deliv.attempts': '尝试次数', 'deliv.detail': '详情', 'deliv.cost': '费用',
  'targets.users': '用户', 'targets.units': '部门', 'targets.list': '批量名单', 'targets.pickUsers': '选择用户', 'targets.pickUnits': '选择部门',
  'targets.upload': '上传名单 (.xls/.xlsx)', 'targets.clearList': '清空名单', 'targets.listCount': '{n} 人', 'targets.showList': '查看名单',
  'targets.to': '收件人', 'targets.variables': '变量', 'targets.parsed': '{file}：解析 {n} 行，{e} 行有错误', 'targets.rowError': '第 {row} 行',
  'targets.rowErrors': '有错误的行', 'targets.errRow': '行', 'targets.errColumn': '列', 'targets.errMessage': '错误',
  'targets.uploading': '正在上传 {file}…', 'targets.uploaded': '{file} 已上传', 'targets.uploadProgress': '上传进度', 'common.sortBy': '按“{col}”排序（再点一次反向）',
  'rich.bold': '加粗', 'rich.italic': '斜体', 'rich.link': '插入链接', 'rich.ul': '无序列表', 'rich.ol': '有序列表', 'rich.source': 'HTML 源码',
  'rich.linkPrompt': '链接地址',

  'tiered.templates': '模板', 'tiered.template': '模板', 'tiered.addTemplate': '新建模板', 'tiered.editor': '编辑器类型',
  'tiered.variables': '变量', 'tiered.variablesPh': '用逗号分隔，例如 name, level', 'tiered.body': '正文',
  'tiered.confirmDeleteTpl': '确定删除模板 {number}？', 'tiered.savedTpl': '模板 {number} 已保存',
  'tiered.channelRule.text': '文本模板可用于短信、语音和即时通讯渠道。', 'tiered.channelRule.rich_text': '富文本模板用于邮件渠道。',
  'tiered.channelRule.voice': '语音模板仅用于语音渠道。',
  'tiered.actions': '推送动作', 'tiered.action': '推送动作', 'tiered.addAction': '新建动作', 'tiered.pickTemplates': '选择模板',
  'tiered.noTemplates': '还没有模板，请先新建模板。', 'tiered.rules': '推送规则', 'tiered.rule': '规则', 'tiered.addRule': '添加规则',
  'tiered.level': '级别', 'tiered.channels': '渠道与账户', 'tiered.addChannel': '添加渠道', 'tiered.pickChannel': '选择渠道',
  'tiered.recipients': '接收人', 'tiered.escalate': '升级', 'tiered.after': '等待', 'tiered.seconds': '秒', 'tiered.minutes': '分钟',
  'tiered.confirmDeleteAction': '确定删除动作 {number}？', 'tiered.savedAction': '动作 {number} 已保存',
  'editor.text': '文本', 'editor.rich_text': '富文本', 'editor.voice': '语音',
  'level.urgent': '紧急', 'level.normal': '普通', 'level.info': '提示',
  'cond.not_acknowledged': '未确认时', 'cond.not_delivered': '未送达时',

  'acc.list': '发送账户', 'acc.add': '新建账户', 'acc.edit': '编辑账户', 'acc.type': '类型', 'acc.sender': '发送地址',
  'acc.searchPh': '按发送地址或名称搜索', 'acc.address': '发件地址', 'acc.fromName': '发件人名称', 'acc.username': 'SMTP 用户名',
  'acc.usernamePh': '默认同发件地址', 'acc.password': '密码', 'acc.host': 'SMTP 服务器', 'acc.port': '端口', 'acc.tls': '加密方式',
  'acc.allowPlain': '允许无加密认证（仅限可信的内网中继）', 'acc.secretKeep': '已设置，留空保持不变', 'acc.saved': '账户已保存并验证通过',
  'acc.confirmDelete': '确定删除账户“{name}”？', 'acc.badJson': '不是有效的 JSON',
  'tls.none': '无', 'tls.starttls': 'STARTTLS', 'tls.tls': 'SSL/TLS',
  'channel.email': '邮件', 'channel.webhook': 'Webhook', 'channel.sms': '短信', 'channel.voice': '语音',
  'channel.aliyun-sms': '阿里云短信', 'channel.aliyun-voice': '阿里云语音', 'channel.tencent-sms': '腾讯云短信',
  'channel.twilio-sms': 'Twilio 短信', 'channel.twilio-voice': 'Twilio 语音', 'channel.dingtalk-robot': '钉钉机器人',
  'channel.dingtalk-work': '钉钉工作通知', 'channel.wecom-robot': '企业微信机器人', 'channel.wecom-app': '企业微信应用',
  'channel.welink': 'WeLink', 'channel.feishu': '飞书', 'channel.slack': 'Slack',

  'cost.currentPeriod': '本期（当月）支出', 'cost.trend': '支出趋势（按月）', 'cost.spendByChannel': '按渠道支出', 'cost.sendsOverTime': '近 30 天各渠道发送量（按日）',
  'cost.balance': '账户余额', 'cost.alert': '余额告警', 'cost.lowBalance': '低余额阈值', 'cost.policy': '余额不足时',
  'cost.alertInfo': '低于 {low} 时：{policy}', 'cost.bills': '账单', 'cost.details': '明细', 'cost.transactions': '交易记录',
  'cost.from': '从', 'cost.to': '到',
  'kind.debit': '扣费', 'kind.top_up': '充值', 'kind.refund': '退款', 'kind.credit': '返还',
  'policy.refuse': '拒绝发送', 'policy.fallback_free': '改用免费渠道',
  'col.period': '月份', 'col.debit_count': '计费条数', 'col.debit_units': '计费单位', 'col.debit_minor': '扣费', 'col.credit_minor': '返还',
  'col.top_up_minor': '充值', 'col.net_minor': '净额', 'col.signed_minor': '收支',
  'col.month': '月份', 'col.channel': '渠道', 'col.count': '数量', 'col.units': '计费单位', 'col.amount_minor': '金额', 'col.cost_minor': '费用',
  'col.total_minor': '合计', 'col.balance_minor': '余额', 'col.kind': '类型', 'col.note': '备注', 'col.created_at': '时间', 'col.at': '时间',
  'col.recipient': '接收人', 'col.message_id': '消息 ID', 'col.delivery_id': '投递 ID', 'col.id': 'ID', 'col.account': '账户',
  'col.sent': '发送', 'col.failed': '失败', 'col.unit_minor': '单价', 'col.description': '说明',

  'reports.days': '时间范围', 'reports.lastDays': '最近 {n} 天', 'reports.sendsByChannel': '各渠道发送量', 'reports.spendByChannel': '各渠道费用',
  'reports.sendsByDay': '每日发送量', 'reports.spendByDay': '每日费用', 'reports.byChannel': '按渠道', 'reports.byDay': '按日期',
  'reports.day': '日期', 'reports.sent': '已发送', 'reports.failed': '失败', 'reports.spend': '费用',
  'reports.delivered': '已送达', 'reports.acknowledged': '已确认', 'reports.pending': '处理中', 'reports.cost': '费用',
  'reports.perPush': '按推送', 'reports.perAction': '按推送动作', 'reports.incidents': '事件数', 'reports.ackedIncidents': '已确认事件',
  'reports.deletedAction': '（动作已删除）', 'reports.spendTable': '每日费用（账本）',
  'reports.spendHint': '费用来自账本，包含通过 API 直接发送的消息；上面各表的费用只统计推送和事件的投递。',

  'tiered.incidents': '事件', 'tiered.incident': '事件', 'tiered.quietHours': '免打扰时段', 'tiered.unknownAction': '（未知动作）',
  'tiered.triggeredAt': '触发时间', 'tiered.stepsFired': '已执行步骤', 'tiered.repeats': '重复触发', 'tiered.ackedBy': '确认人',
  'tiered.noIncidents': '暂无事件。动作通过网关 API 触发后会显示在这里。', 'tiered.dedupKey': '去重键', 'tiered.timeline': '时间线',
  'tiered.at': '时间', 'tiered.event': '事件', 'tiered.step': '步骤', 'tiered.ackScope': '确认后停止',
  'ackScope.incident': '整个事件（停止所有后续步骤）', 'ackScope.recipient': '仅该接收人（其他人继续升级）',
  'istate.open': '处理中', 'istate.acknowledged': '已确认', 'istate.done': '已结束',
  'ev.triggered': '触发', 'ev.repeated': '重复触发', 'ev.fired': '已发送', 'ev.deferred': '免打扰延后', 'ev.refused': '拒绝发送',
  'ev.fallback': '改用免费渠道', 'ev.skipped': '跳过', 'ev.acknowledged': '已确认', 'ev.stopped': '已停止', 'ev.done': '结束',
  'quiet.hint': '免打扰时段内，未豁免级别的消息会等到时段结束再发送（按接收人时区，未知时按此时区）。开始与结束相同表示不启用。',
  'quiet.start': '开始时间 (HH:MM)', 'quiet.end': '结束时间 (HH:MM)', 'quiet.timeZone': '时区 (IANA，例如 Asia/Shanghai)',
  'quiet.exempt': '不受免打扰限制的级别', 'quiet.unset': '尚未设置免打扰时段。', 'quiet.off': '免打扰已关闭（开始与结束相同）。',
  'quiet.active': '当前免打扰时段：{start}–{end}（{zone}）',
  'cost.prepaid': '预付费', 'cost.prepaidHint': '预付费：付费发送前先检查余额，余额不足时拒绝发送（分级推送可按上面的策略改用免费渠道）；不勾选则发送后计费。',
  'cost.prepaidOn': '预付费', 'cost.prepaidOff': '后付费',
};

const en = {
  'app.subtitle': 'Admin console',
  'app.apiDocs': 'API reference (OpenAPI)',
  'common.allStatuses': 'All statuses', 'common.back': 'Back', 'common.cancel': 'Cancel', 'common.close': 'Close',
  'common.confirm': 'Please confirm', 'common.copied': 'Copied to the clipboard', 'common.copy': 'Copy', 'common.createdAt': 'Created',
  'common.createdBy': 'Created by', 'common.delete': 'Delete', 'common.deleted': 'Deleted', 'common.disable': 'Disable',
  'common.disabled': 'Disabled', 'common.done': 'Done', 'common.edit': 'Edit', 'common.empty': 'Nothing here yet',
  'common.enable': 'Enable', 'common.enabled': 'Enabled', 'common.language': 'Language', 'common.loading': 'Loading…',
  'common.name': 'Name', 'common.number': 'Number', 'common.ok': 'OK', 'common.range': '{from}–{to} of {total}',
  'common.refresh': 'Refresh', 'common.remove': 'Remove', 'common.reset': 'Reset', 'common.save': 'Save', 'common.saved': 'Saved',
  'common.search': 'Search', 'common.status': 'Status', 'common.title': 'Title', 'common.updatedAt': 'Updated', 'common.view': 'View',

  'menu.directory': 'Directory', 'menu.apps': 'App market', 'menu.roles': 'Roles', 'menu.pushes': 'Message push',
  'menu.tiered': 'Tiered push', 'menu.accounts': 'Sender accounts', 'menu.cost': 'Cost management', 'menu.reports': 'Reports',

  'login.title': 'Log in', 'login.login': 'Login', 'login.password': 'Password', 'login.submit': 'Log in', 'login.link': 'Have an account? Log in',
  'login.logout': 'Log out',
  'register.title': 'Register your enterprise', 'register.enterprise': 'Enterprise name', 'register.adminName': 'Administrator name',
  'register.adminLogin': 'Administrator login', 'register.password': 'Password', 'register.passwordHint': 'At least 10 characters',
  'register.email': 'Email', 'register.mobile': 'Mobile', 'register.submit': 'Register', 'register.link': 'No account? Register your enterprise',
  'register.done': 'Registered. Please log in.',

  'err.network': 'Cannot reach the server', 'err.session': 'Your session has expired; please log in again', 'err.title': 'Something went wrong',
  'err.forbiddenTitle': 'Not allowed', 'err.forbidden': 'You do not have permission to open this page.',
  'home.title': 'Welcome to Herald', 'home.noMenus': 'Your roles grant no menus; ask an administrator.',

  'dir.units': 'Organization', 'dir.addChild': 'New child unit', 'dir.addChildOf': 'New unit under “{unit}”', 'dir.rename': 'Rename',
  'dir.move': 'Move', 'dir.moveUnit': 'Move “{unit}”', 'dir.newParent': 'New parent unit', 'dir.confirmDelete': 'Delete the unit “{unit}”?',
  'users.title': 'Users', 'users.inUnit': 'Users of {unit} (with sub-units)', 'users.add': 'New user', 'users.edit': 'Edit user',
  'users.login': 'Login', 'users.password': 'Password', 'users.passwordKeep': 'Leave empty to keep', 'users.currentPassword': 'Current password (to change your own password or login)', 'users.mobile': 'Mobile', 'users.email': 'Email',
  'users.wecom': 'WeCom ID', 'users.dingtalk': 'DingTalk ID', 'users.welink': 'WeLink ID', 'users.unit': 'Unit', 'users.roles': 'Roles',
  'users.searchPh': 'Name, login, mobile or email', 'users.confirmDelete': 'Delete the user “{name}”?',

  'app.messaging.name': 'Messaging', 'app.messaging.desc': 'Send email, SMS, voice and IM messages; enabling it issues an API key.',
  'app.tiered-push.name': 'Tiered push', 'app.tiered-push.desc': 'Alerts and notices by level, channel and escalation rules.',
  'app.reports.name': 'Reports', 'app.reports.desc': 'Deliveries, failures, acknowledgements and spend by channel, day, push and action.',
  'apps.enable': 'Enable', 'apps.enabled': 'Enabled', 'apps.enabledAt': 'Enabled {at} by {by}', 'apps.notEnabled': 'Not enabled',
  'apps.keys': 'API keys', 'apps.createKey': 'New key', 'apps.prefix': 'Prefix', 'apps.revoke': 'Revoke', 'apps.revoked': 'Key revoked',
  'apps.confirmRevoke': 'Calls with this key will be refused. Revoke it?', 'apps.keyTitle': 'API key',
  'apps.keyOnce': 'This key is shown only once. Copy it now and keep it safe.',

  'roles.list': 'Roles', 'roles.add': 'New role', 'roles.edit': 'Edit role', 'roles.perms': 'Function permissions', 'roles.data': 'Data permission',
  'roles.allUnits': 'All units', 'roles.someUnits': 'Selected units (with sub-units)', 'roles.confirmDelete': 'Delete the role “{name}”?',
  'perm.kind.menu': 'menu', 'perm.kind.button': 'button',
  'perm.directory.view': 'View directory', 'perm.directory.edit': 'Edit directory', 'perm.apps.view': 'View apps', 'perm.apps.manage': 'Manage apps and keys',
  'perm.roles.view': 'View roles', 'perm.roles.manage': 'Manage roles', 'perm.push.view': 'View pushes', 'perm.push.edit': 'Edit pushes',
  'perm.push.send': 'Enable/disable/send pushes', 'perm.tiered.view': 'View tiered push', 'perm.tiered.edit': 'Edit tiered push',
  'perm.accounts.view': 'View accounts', 'perm.accounts.edit': 'Edit accounts', 'perm.cost.view': 'View costs', 'perm.cost.manage': 'Balance alert settings',
  'perm.reports.view': 'View reports', 'perm.users.password': "Reset others' passwords and logins",

  'push.list': 'Pushes', 'push.add': 'New push', 'push.view': 'View / edit push', 'push.create': 'Create', 'push.channel': 'Channel',
  'push.account': 'Sender account', 'push.pickAccount': 'Choose an account', 'push.content': 'Content', 'push.subject': 'Subject', 'push.body': 'Body',
  'push.text': 'Text', 'push.targets': 'Recipients', 'push.advanced': 'Advanced settings', 'push.now': 'Send now', 'push.at': 'Send at',
  'push.enableOnSave': 'Enable on save', 'push.schedule': 'Schedule', 'push.deliveries': 'Delivery status', 'push.messageId': 'Message id',
  'push.confirmDelete': 'Delete push {number}?', 'push.deleteHint': 'Only disabled pushes can be deleted', 'push.copied': 'Copied as {number}',
  'push.saved': 'Push {number} saved', 'push.sentReadonly': 'This push has been sent and can no longer be edited.',
  'status.draft': 'Draft', 'status.scheduled': 'Scheduled', 'status.sent': 'Sent', 'status.disabled': 'Disabled',
  'dstatus.queued': 'Queued', 'dstatus.sending': 'Sending', 'dstatus.sent': 'Sent', 'dstatus.delivered': 'Delivered', 'dstatus.read': 'Read',
  'dstatus.failed': 'Failed', 'dstatus.retrying': 'Retrying', 'dstatus.expired': 'Expired', 'dstatus.cancelled': 'Cancelled',
  'deliv.recipient': 'Recipient', 'deliv.attempts': 'Attempts', 'deliv.detail': 'Detail', 'deliv.cost': 'Cost',
  'targets.users': 'Users', 'targets.units': 'Units', 'targets.list': 'Batch list', 'targets.pickUsers': 'Pick users', 'targets.pickUnits': 'Pick units',
  'targets.upload': 'Upload list (.xls/.xlsx)', 'targets.clearList': 'Clear list', 'targets.listCount': '{n} recipients', 'targets.showList': 'Show list',
  'targets.to': 'To', 'targets.variables': 'Variables', 'targets.parsed': '{file}: {n} rows parsed, {e} rows with errors', 'targets.rowError': 'Row {row}',
  'targets.rowErrors': 'Rows with errors', 'targets.errRow': 'Row', 'targets.errColumn': 'Column', 'targets.errMessage': 'Error',
  'targets.uploading': 'Uploading {file}…', 'targets.uploaded': '{file} uploaded', 'targets.uploadProgress': 'Upload progress', 'common.sortBy': 'Sort by {col} (click again to reverse)',
  'rich.bold': 'Bold', 'rich.italic': 'Italic', 'rich.link': 'Link', 'rich.ul': 'Bulleted list', 'rich.ol': 'Numbered list', 'rich.source': 'HTML source',
  'rich.linkPrompt': 'Link URL',

  'tiered.templates': 'Templates', 'tiered.template': 'Template', 'tiered.addTemplate': 'New template', 'tiered.editor': 'Editor type',
  'tiered.variables': 'Variables', 'tiered.variablesPh': 'Comma separated, e.g. name, level', 'tiered.body': 'Body',
  'tiered.confirmDeleteTpl': 'Delete template {number}?', 'tiered.savedTpl': 'Template {number} saved',
  'tiered.channelRule.text': 'Text templates serve SMS, voice and IM channels.', 'tiered.channelRule.rich_text': 'Rich-text templates serve email.',
  'tiered.channelRule.voice': 'Voice templates serve voice channels only.',
  'tiered.actions': 'Actions', 'tiered.action': 'Action', 'tiered.addAction': 'New action', 'tiered.pickTemplates': 'Templates',
  'tiered.noTemplates': 'No templates yet: create one first.', 'tiered.rules': 'Push rules', 'tiered.rule': 'Rule', 'tiered.addRule': 'Add rule',
  'tiered.level': 'Level', 'tiered.channels': 'Channels and accounts', 'tiered.addChannel': 'Add channel', 'tiered.pickChannel': 'Choose a channel',
  'tiered.recipients': 'Recipients', 'tiered.escalate': 'Escalate', 'tiered.after': 'after', 'tiered.seconds': 'seconds', 'tiered.minutes': 'minutes',
  'tiered.confirmDeleteAction': 'Delete action {number}?', 'tiered.savedAction': 'Action {number} saved',
  'editor.text': 'Text', 'editor.rich_text': 'Rich text', 'editor.voice': 'Voice',
  'level.urgent': 'Urgent', 'level.normal': 'Normal', 'level.info': 'Info',
  'cond.not_acknowledged': 'if not acknowledged', 'cond.not_delivered': 'if not delivered',

  'acc.list': 'Sender accounts', 'acc.add': 'New account', 'acc.edit': 'Edit account', 'acc.type': 'Type', 'acc.sender': 'Sender address',
  'acc.searchPh': 'Search by sender address or name', 'acc.address': 'Sender address', 'acc.fromName': 'Sender name', 'acc.username': 'SMTP user',
  'acc.usernamePh': 'Defaults to the sender address', 'acc.password': 'Password', 'acc.host': 'SMTP host', 'acc.port': 'Port', 'acc.tls': 'TLS mode',
  'acc.allowPlain': 'Allow authentication without TLS (trusted relay only)', 'acc.secretKeep': 'Set; leave empty to keep', 'acc.saved': 'Account saved and verified',
  'acc.confirmDelete': 'Delete the account “{name}”?', 'acc.badJson': 'not valid JSON',
  'tls.none': 'None', 'tls.starttls': 'STARTTLS', 'tls.tls': 'SSL/TLS',
  'channel.email': 'Email', 'channel.webhook': 'Webhook', 'channel.sms': 'SMS', 'channel.voice': 'Voice',

  'cost.currentPeriod': 'This billing period (month) spend', 'cost.trend': 'Spend trend (by month)', 'cost.spendByChannel': 'Spend by channel', 'cost.sendsOverTime': 'Sends by channel per day (last 30 days)',
  'cost.balance': 'Balance', 'cost.alert': 'Low-balance alert', 'cost.lowBalance': 'Threshold', 'cost.policy': 'When the balance is too low',
  'cost.alertInfo': 'Below {low}: {policy}', 'cost.bills': 'Bills', 'cost.details': 'Details', 'cost.transactions': 'Transactions',
  'cost.from': 'From', 'cost.to': 'To',
  'kind.debit': 'debit', 'kind.top_up': 'top-up', 'kind.refund': 'refund', 'kind.credit': 'credit',
  'policy.refuse': 'refuse to send', 'policy.fallback_free': 'fall back to free channels',
  'col.period': 'Month', 'col.debit_count': 'Billed sends', 'col.debit_units': 'Billed units', 'col.debit_minor': 'Debits', 'col.credit_minor': 'Credits',
  'col.top_up_minor': 'Top-ups', 'col.net_minor': 'Net', 'col.signed_minor': 'Signed amount',
  'col.month': 'Month', 'col.channel': 'Channel', 'col.count': 'Count', 'col.units': 'Units', 'col.amount_minor': 'Amount', 'col.cost_minor': 'Cost',
  'col.total_minor': 'Total', 'col.balance_minor': 'Balance', 'col.kind': 'Kind', 'col.note': 'Note', 'col.created_at': 'Time', 'col.at': 'Time',
  'col.recipient': 'Recipient', 'col.message_id': 'Message id', 'col.delivery_id': 'Delivery id', 'col.id': 'Id', 'col.account': 'Account',
  'col.sent': 'Sent', 'col.failed': 'Failed', 'col.unit_minor': 'Unit price', 'col.description': 'Description',

  'reports.days': 'Period', 'reports.lastDays': 'Last {n} days', 'reports.sendsByChannel': 'Sends by channel', 'reports.spendByChannel': 'Spend by channel',
  'reports.sendsByDay': 'Sends by day', 'reports.spendByDay': 'Spend by day', 'reports.byChannel': 'By channel', 'reports.byDay': 'By day',
  'reports.day': 'Day', 'reports.sent': 'Sent', 'reports.failed': 'Failed', 'reports.spend': 'Spend',
  'reports.delivered': 'Delivered', 'reports.acknowledged': 'Acknowledged', 'reports.pending': 'Pending', 'reports.cost': 'Cost',
  'reports.perPush': 'Per push', 'reports.perAction': 'Per action', 'reports.incidents': 'Incidents', 'reports.ackedIncidents': 'Acknowledged incidents',
  'reports.deletedAction': '(action deleted)', 'reports.spendTable': 'Spend by day (ledger)',
  'reports.spendHint': 'Spend comes from the ledger and includes messages sent straight through the API; the cost in the tables above counts only the deliveries of pushes and incidents.',

  'tiered.incidents': 'Incidents', 'tiered.incident': 'Incident', 'tiered.quietHours': 'Quiet hours', 'tiered.unknownAction': '(unknown action)',
  'tiered.triggeredAt': 'Triggered', 'tiered.stepsFired': 'Steps fired', 'tiered.repeats': 'Repeats', 'tiered.ackedBy': 'Acknowledged by',
  'tiered.noIncidents': 'No incidents. Actions triggered through the gateway API show here.', 'tiered.dedupKey': 'Dedup key', 'tiered.timeline': 'Timeline',
  'tiered.at': 'Time', 'tiered.event': 'Event', 'tiered.step': 'Step', 'tiered.ackScope': 'Acknowledgement stops',
  'ackScope.incident': 'the whole incident (all further steps)', 'ackScope.recipient': 'only that recipient (others keep escalating)',
  'istate.open': 'Open', 'istate.acknowledged': 'Acknowledged', 'istate.done': 'Done',
  'ev.triggered': 'Triggered', 'ev.repeated': 'Triggered again', 'ev.fired': 'Sent', 'ev.deferred': 'Deferred (quiet hours)', 'ev.refused': 'Refused',
  'ev.fallback': 'Fell back to a free channel', 'ev.skipped': 'Skipped', 'ev.acknowledged': 'Acknowledged', 'ev.stopped': 'Stopped', 'ev.done': 'Done',
  'quiet.hint': 'During quiet hours, messages of levels not exempt wait until the window ends (in the recipient\'s time zone when known, else this one). Start equal to end means no quiet hours.',
  'quiet.start': 'Start (HH:MM)', 'quiet.end': 'End (HH:MM)', 'quiet.timeZone': 'Time zone (IANA, e.g. Asia/Shanghai)',
  'quiet.exempt': 'Levels exempt from quiet hours', 'quiet.unset': 'No quiet hours set yet.', 'quiet.off': 'Quiet hours are off (start equals end).',
  'quiet.active': 'Quiet hours: {start}–{end} ({zone})',
  'cost.prepaid': 'Prepaid', 'cost.prepaidHint': 'Prepaid: paid sends are checked against the balance first; a balance too low refuses the send (tiered push may fall back to a free channel, per the policy above). Unticked: billed after sending.',
  'cost.prepaidOn': 'Prepaid', 'cost.prepaidOff': 'Postpaid',
};

export const MESSAGES = { zh, en };

let lang = (() => {
  try {
    const v = localStorage.getItem(KEY);
    if (v && MESSAGES[v]) return v;
  } catch { /* storage unavailable */ }
  return 'zh';
})();

export function getLang() { return lang; }
export function setLang(v) {
  if (!MESSAGES[v]) return;
  lang = v;
  try { localStorage.setItem(KEY, v); } catch { /* storage unavailable */ }
}
/** t('key', {var}) → text; a missing key falls back to `fallback`, then to the key. */
export function t(key, vars = {}, fallback) {
  let s = MESSAGES[lang][key];
  if (s === undefined) s = fallback !== undefined && fallback !== null && fallback !== '' ? String(fallback) : key;
  return s.replace(/\{(\w+)\}/g, (m, k) => (vars && vars[k] !== undefined ? String(vars[k]) : m));
}
